"""`python -m activation_extract --pre_tuned_model A --fine_tuned_model B --data_path D ...`"""

from __future__ import annotations

from headact.cli.compare_cmd import main

if __name__ == "__main__":
    main(prog_name="python -m activation_extract")
