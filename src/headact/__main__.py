"""`python -m headact` runs the command line."""

from headact.cli import main

if __name__ == "__main__":
    main()
