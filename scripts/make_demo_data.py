"""Write the demo's product-review sentiment data (train.jsonl, eval.jsonl), deterministically.

Run from the repository root: `python scripts/make_demo_data.py`. The output is committed;
this script only documents how it was made and lets anyone remake it byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240611
N_TRAIN = 480
N_EVAL = 200
OUT = Path(__file__).resolve().parents[1] / "src" / "headact" / "demo" / "data"

# product -> (its own praise, its own complaints)
PRODUCTS: dict[str, tuple[list[str], list[str]]] = {
    "blender": (["crushes ice in seconds", "makes silky smoothies without leaving chunks"],
                ["leaks from the base every time I use it", "smells like burning plastic"]),
    "kettle": (["boils a full pot in about three minutes", "switches off reliably at the boil"],
               ["leaves a metallic taste in the water", "started rusting inside after a month"]),
    "toaster": (["browns both sides evenly", "handles thick bagels with no trouble"],
                ["burns one side and leaves the other pale", "trips the breaker now and then"]),
    "coffee grinder": (["gives a consistent grind for espresso", "is quieter than I expected"],
                       ["throws grounds all over the counter", "jammed on the second day"]),
    "frying pan": (["heats evenly and nothing sticks", "cleans up with a quick wipe"],
                   ["warped the first time I used it on high heat",
                    "lost its coating within weeks"]),
    "rice cooker": (["makes perfect rice every single time", "keeps food warm for hours"],
                    ["scorches the bottom layer of rice", "has a lid that never seals properly"]),
    "stand mixer": (["kneads bread dough without straining", "has plenty of power for its size"],
                    ["walks across the counter at high speed", "rattles loudly on every setting"]),
    "knife set": (["came razor sharp out of the box", "holds an edge for a long time"],
                  ["went dull after a few uses", "has handles that came loose"]),
    "headset": (["sounds clear with punchy bass", "blocks out the noise on my commute"],
                ["crackles in the left ear at any volume", "hurts my ears after twenty minutes"]),
    "phone charger": (["charges my phone really fast", "stays cool even overnight"],
                      ["gets alarmingly hot", "only works if the cable is held at an angle"]),
    "bluetooth speaker": (["fills the whole room with sound", "pairs instantly with my phone"],
                          ["keeps dropping the connection", "distorts as soon as you turn it up"]),
    "keyboard": (["has a lovely typing feel", "connects to three devices without fuss"],
                 ["has a space bar that sticks", "misses keystrokes when I type quickly"]),
    "webcam": (["gives a sharp picture even in dim light", "worked the moment I plugged it in"],
               ["makes everyone look washed out", "has a microphone that picks up nothing"]),
    "smartwatch": (["tracks my runs accurately", "lasts almost a week on one charge"],
                   ["loses sync with my phone every day", "needs charging twice a day"]),
    "e-reader": (["has a screen that is easy on the eyes", "is light enough to hold for hours"],
                 ["freezes when turning pages", "has a backlight that is uneven"]),
    "power bank": (["charged my phone four times on one fill", "is slim enough for a pocket"],
                   ["holds barely half the advertised charge", "died completely after a month"]),
    "monitor": (["has vivid colours and no dead pixels", "was simple to mount on the wall"],
                ["arrived with a line of dead pixels", "flickers at the refresh rate it claims"]),
    "wireless mouse": (["tracks smoothly on any surface", "fits my hand perfectly"],
                       ["double-clicks when I only click once", "lags behind the pointer"]),
    "vacuum cleaner": (["picks up every bit of pet hair", "is light enough to carry upstairs"],
                       ["loses suction after a few minutes", "has a battery that barely lasts"]),
    "desk lamp": (["gives warm, even light for reading", "has a dimmer that works smoothly"],
                  ["buzzes when it is turned down", "droops no matter how you tighten it"]),
    "pillow": (["keeps its shape night after night", "helped with my neck pain"],
               ["went flat within a week", "had a chemical smell that never went away"]),
    "office chair": (["is comfortable through a full work day", "was easy to put together"],
                     ["creaks whenever I lean back", "has armrests that wobble"]),
    "duvet cover": (["feels soft and gets softer with each wash", "stays put on the duvet"],
                    ["pilled after the first wash", "is much thinner than the photos suggest"]),
    "air purifier": (["cleared the smell of smoke overnight", "runs almost silently at night"],
                     ["makes a whining noise on every setting", "barely changes the air quality"]),
    "space heater": (["warms my small office in minutes", "shuts off safely if tipped over"],
                     ["smells of burning dust every time", "barely takes the chill off"]),
    "backpack": (["has room for everything I carry", "is comfortable even when full"],
                 ["ripped at the seam within a month", "has zips that catch constantly"]),
    "tent": (["stayed dry through a night of heavy rain", "goes up in under ten minutes"],
             ["leaked at the seams in light rain", "came with poles that bent in the wind"]),
    "rowing machine": (["runs smoothly and quietly", "folds away neatly after a workout"],
                       ["squeaks on every single stroke", "has a seat that sticks halfway"]),
    "water bottle": (["keeps drinks cold all day", "does not leak in my bag"],
                     ["leaks from the lid", "left a plastic taste in everything"]),
    "yoga mat": (["has great grip even when I sweat", "cushions my knees nicely"],
                 ["is slippery on a wooden floor", "started flaking after a few weeks"]),
    "bike lock": (["feels sturdy and secure", "has a key that turns smoothly"],
                  ["rusted shut after one wet week", "came with a key that barely fits"]),
    "board game": (["has become a family favourite", "is easy to learn but has real depth"],
                   ["was missing several pieces", "has rules that are hopelessly confusing"]),
    "phone case": (["survived several drops without a scratch", "adds hardly any bulk"],
                   ["turned yellow within a month", "makes the buttons hard to press"]),
    "umbrella": (["held up in strong wind", "opens and closes with one hand"],
                 ["turned inside out on the first windy day", "has a catch that keeps slipping"]),
    "suitcase": (["rolls smoothly and turns easily", "survived three flights without a dent"],
                 ["lost a wheel on its first trip", "has a handle that jams halfway"]),
    "winter jacket": (["kept me warm well below freezing", "has deep, useful pockets"],
                      ["lets the wind straight through", "has a zip that broke in a week"]),
    "drill": (["has plenty of torque for my projects", "holds its charge for weeks"],
              ["overheats after a few holes", "has a chuck that will not grip bits"]),
    "baby monitor": (["has a clear picture even at night", "never drops the connection"],
                     ["loses signal in the next room", "has a screen that is far too dim"]),
    "printer": (["set up over wifi in minutes", "prints crisp text quickly"],
                ["jams on every other page", "refuses third-party ink cartridges"]),
    "garden hose": (["does not kink at all", "has fittings that stay tight"],
                    ["kinked constantly and split in a week", "leaks at the connector"]),
}

POS_GENERIC = [
    "works exactly as described", "feels solid and well made", "was easy to set up",
    "is worth every penny", "still looks new after months of daily use",
    "exceeded my expectations", "does the job without any fuss", "is great value for the money",
    "has held up really well", "is much better than the one it replaced",
    "is a pleasure to use", "does everything I hoped it would",
]
NEG_GENERIC = [
    "stopped working after two weeks", "feels cheap and flimsy", "arrived damaged",
    "is not worth the money", "broke the first time I used it", "was a waste of money",
    "does not do what the listing promises", "feels like it will fall apart any day",
    "is worse than the cheap one it replaced", "was a frustrating purchase from the start",
    "is poorly made", "disappointed me in almost every way",
]
# Verdicts that read as clauses (after "and" or ";") and ones that lead in (before ":").
POS_ENDINGS = [
    "I would happily buy it again", "I recommend it to anyone", "I am really pleased with it",
    "it was a great buy", "I have already ordered a second one",
    "my partner wants one now too", "I wish I had bought it sooner",
]
NEG_ENDINGS = [
    "I would not buy it again", "I am sending it back", "I regret buying it",
    "I have asked for a refund", "customer service was no help either", "I expected far better",
]
POS_LEADS = ["Highly recommended", "No complaints at all", "Really happy with this one",
             "Great buy", "Five stars from me", "Pleasantly surprised"]
NEG_LEADS = ["Avoid this one", "Save your money", "Very disappointed", "Not impressed",
             "What a letdown", "Do not bother"]
TIMELESS = ("after", "first", "arrived", "within", "week", "month", "day", "new", "held",
            "become")
MINOR_GRIPES = [
    "the box was battered", "delivery took a week longer than promised",
    "the instructions are hard to follow", "it is a little pricey",
    "the colour is slightly different from the photo", "it took a while to arrive",
    "the packaging was excessive", "the manual is badly translated",
]
SMALL_PLUSES = [
    "it looks nice", "the packaging was lovely", "it arrived quickly",
    "the price seemed fair", "the colour is pretty", "setup was simple enough",
    "it looks great in the photos", "the seller replied quickly",
]
PEOPLE = ["my mum", "my dad", "my sister", "my brother", "my wife", "my husband", "a friend",
          "my daughter", "my son", "my flatmate", "my grandmother", "a colleague"]
TIMES = ["a week", "two weeks", "a month", "three months", "six months", "a year"]


def clause(rng: random.Random, product: str, positive: bool) -> str:
    """A predicate about the product, specific half the time."""
    praise, complaints = PRODUCTS[product]
    specific = praise if positive else complaints
    generic = POS_GENERIC if positive else NEG_GENERIC
    return rng.choice(specific) if rng.random() < 0.5 else rng.choice(generic)


def sentence(rng: random.Random, positive: bool) -> str:
    """One review sentence of the given polarity from one of several shapes."""
    product = rng.choice(list(PRODUCTS))
    what = clause(rng, product, positive)
    ending = rng.choice(POS_ENDINGS if positive else NEG_ENDINGS)
    lead = rng.choice(POS_LEADS if positive else NEG_LEADS)
    shape = rng.randrange(9)
    if shape == 0:
        return f"The {product} {what}."
    if shape == 1:
        return f"The {product} {what}, and {ending}."
    if shape == 2:
        return f"I bought this {product} for {rng.choice(PEOPLE)} and it {what}."
    if shape == 3 and not any(word in what for word in TIMELESS):
        verb, rest = what.split(" ", 1)
        if verb == "is":
            return f"After {rng.choice(TIMES)} of use, this {product} is still {rest}."
        if verb.endswith("s") and verb != "was":
            return f"After {rng.choice(TIMES)} of use, this {product} still {what}."
    if shape == 4:  # a concession the other way, then the verdict
        if positive:
            return f"Although {rng.choice(MINOR_GRIPES)}, the {product} {what}."
        return f"Although {rng.choice(SMALL_PLUSES)}, the {product} {what}."
    if shape == 5:
        if positive:
            return f"{rng.choice(MINOR_GRIPES).capitalize()}, but the {product} {what}."
        return f"{rng.choice(SMALL_PLUSES).capitalize()}, but the {product} {what}."
    if shape == 6:
        return f"This {product} {what}; {ending}."
    if shape == 7:
        other = clause(rng, product, positive)
        if other == what:
            return f"Our new {product} {what}."
        return f"Our new {product} {what} and {other}."
    return f"{lead}: the {product} {what}."


def build(rng: random.Random, n: int, seen: set[str]) -> list[dict[str, object]]:
    """n new records, half positive, none repeating a sentence already seen."""
    records = []
    while len(records) < n:
        positive = len(records) % 2 == 0
        text = sentence(rng, positive)
        if text in seen:
            continue
        seen.add(text)
        records.append({"text": text, "label": int(positive)})
    rng.shuffle(records)
    return records


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.jsonl", N_TRAIN), ("eval.jsonl", N_EVAL)):
        with open(OUT / name, "w", encoding="utf-8", newline="\n") as f:
            for record in build(rng, n, seen):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"wrote {OUT / name}: {n} records")


if __name__ == "__main__":
    main()
