"""Everyday words for emoji that neither their Unicode names nor their CLDR keywords use: "puppy", "burger", "plane".

Hand-written from general knowledge (no data file). The built-in image model learns a word only from its captions,
and the captions come from names and CLDR keywords, which say "dog face", "hamburger", "airplane". People type
"a cute puppy", "a burger", "a plane": round 5's model drew a person for "a cute puppy", because nothing it learnt
held "puppy". Keys are emoji names as the emoji package spells them (skin tones removed); values are lower case.

`everyday_synonyms` checks each word against a word-frequency list (wordfreq, the same list round 5's filler words
come from): a word people rarely type teaches nothing useful, so it is dropped. A word that is another emoji's own
name or alias is dropped too: "orange" is the tangerine's colour word and the name of no emoji, but "cake" would
pull a picture between "birthday cake" and "shortcake".

Clocks get their times as people write them ("3 o'clock", "half past three", "3:30"): the CLDR keywords hold "3:00",
but the captions drop keywords without letters, and nothing says "half past".
"""

from __future__ import annotations

import re

EVERYDAY_ZIPF = 2.3  # wordfreq's Zipf scale: 2.3 is about one use in five million words ("aubergine" 2.4)

SYNONYMS: dict[str, tuple[str, ...]] = {
    # animals
    "dog": ("puppy", "pup", "doggy", "doggie", "hound", "pooch"), "dog face": ("puppy", "pup", "doggy", "puppy face"),
    "poodle": ("puppy", "fluffy dog"), "guide dog": ("labrador",), "service dog": ("working dog",),
    "cat": ("kitten", "kitty", "pussycat", "moggy"), "cat face": ("kitten", "kitty", "kitty face"),
    "black cat": ("black kitten",), "mouse": ("mice",), "mouse face": ("mice",), "rat": ("rodent",),
    "cow": ("cattle", "calf", "dairy cow"), "cow face": ("calf", "moo"), "ox": ("bullock",),
    "horse": ("pony", "stallion", "mare"), "horse face": ("pony", "stallion", "mare"),
    "pig": ("piggy", "hog", "piglet"), "pig face": ("piggy", "piglet"), "pig nose": ("snout",),
    "rabbit": ("hare",), "rabbit face": ("bunny face",), "hamster": ("guinea pig", "gerbil"),
    "chicken": ("hen",), "rooster": ("cockerel",), "baby chick": ("chicken",), "bird": ("birdie", "songbird", "robin"),
    "black bird": ("blackbird",), "duck": ("duckling", "mallard"), "eagle": ("hawk", "falcon"), "owl": ("owlet",),
    "dove": ("pigeon",), "penguin": ("emperor penguin",), "parrot": ("macaw", "parakeet"),
    "frog": ("toad", "froggy"), "turtle": ("sea turtle",), "snake": ("python", "cobra", "viper"),
    "fish": ("goldfish",), "tropical fish": ("clownfish", "goldfish"), "blowfish": ("pufferfish",),
    "dolphin": ("porpoise",), "whale": ("humpback",), "spouting whale": ("blue whale",), "shark": ("great white",),
    "octopus": ("tentacles",), "lion": ("lioness",), "tiger": ("tigress",), "tiger face": ("tiger cub",),
    "bear": ("grizzly", "teddy", "brown bear"), "polar bear": ("ice bear",), "panda": ("giant panda",),
    "monkey": ("chimp", "chimpanzee", "baboon"), "monkey face": ("chimp", "cheeky monkey"),
    "honeybee": ("bumblebee", "bumble bee", "wasp"), "butterfly": ("moth",), "spider": ("tarantula",),
    "lady beetle": ("lady bug",), "ant": ("ants",), "snail": ("slug",), "elephant": ("jumbo",),
    "t-rex": ("dinosaur", "dino"), "sauropod": ("dinosaur",),
    "fox": ("vixen",), "wolf": ("werewolf",), "deer": ("reindeer", "stag", "fawn"), "koala": ("koala bear",),
    "crocodile": ("alligator", "gator"), "lizard": ("gecko", "iguana"), "ewe": ("lamb",), "ram": ("lamb",),
    "goat": ("billy goat",), "paw prints": ("footprints",),
    # vehicles
    "automobile": ("motorcar", "sedan", "saloon car"), "oncoming automobile": ("car front",), "taxi": ("cab", "taxicab"),
    "racing car": ("race car", "formula one", "sports car"), "police car": ("cop car", "patrol car"),
    "airplane": ("plane", "aeroplane", "jet", "aircraft", "airliner"), "small airplane": ("plane", "propeller plane"),
    "helicopter": ("chopper",), "rocket": ("spaceship", "spacecraft", "space rocket"), "flying saucer": ("ufo", "alien ship"),
    "bicycle": ("bike", "cycle"), "motorcycle": ("motorbike", "bike"), "motor scooter": ("moped", "vespa"),
    "kick scooter": ("scooter",), "bus": ("coach", "school bus"), "minibus": ("van",), "ambulance": ("paramedics",),
    "fire engine": ("fire truck", "firetruck"), "delivery truck": ("lorry", "van", "truck"),
    "articulated lorry": ("truck", "semi truck"), "pickup truck": ("pickup", "truck"),
    "sport utility vehicle": ("suv", "jeep", "four by four"), "tractor": ("farm tractor",),
    "train": ("railway", "railroad"), "locomotive": ("steam train", "steam engine"), "high-speed train": ("fast train",),
    "bullet train": ("shinkansen",), "metro": ("subway", "underground", "tube train"), "tram": ("streetcar", "trolley"),
    "sailboat": ("yacht", "sailing boat"), "speedboat": ("motorboat", "powerboat"), "ship": ("ocean liner", "steamship"),
    "passenger ship": ("cruise ship",), "canoe": ("kayak",), "ferry": ("ferryboat",),
    "skateboard": ("skate board",), "roller skate": ("rollerskate", "skate"),
    # clocks (their times are added from the names, see clock_times)
    "watch": ("wristwatch", "wrist watch"), "alarm clock": ("wake up clock",), "stopwatch": ("timer",),
    "hourglass done": ("sand timer", "egg timer"), "hourglass not done": ("sand timer", "egg timer"),
    "mantelpiece clock": ("mantel clock", "antique clock"), "timer clock": ("kitchen timer",),
    # food
    "hamburger": ("burger", "cheeseburger"), "french fries": ("fries", "chips"), "doughnut": ("donut",),
    "hot dog": ("sausage",), "pizza": ("pizza slice", "slice of pizza"), "ice cream": ("gelato", "sundae"),
    "soft ice cream": ("ice cream cone", "cone", "soft serve"), "birthday cake": ("cake", "party cake"),
    "shortcake": ("cake slice", "slice of cake"), "red apple": ("apple",), "green apple": ("apple",),
    "eggplant": ("aubergine",), "bell pepper": ("pepper", "capsicum"), "hot pepper": ("chilli", "chili"),
    "spaghetti": ("pasta", "noodles"), "cookie": ("biscuit",), "cupcake": ("muffin", "fairy cake"),
    "sandwich": ("sarnie", "sub", "toastie"), "hot beverage": ("coffee", "tea", "hot chocolate", "mug"),
    "beer mug": ("beer", "pint"), "wine glass": ("wine", "red wine"), "tangerine": ("orange", "mandarin", "clementine"),
    "ear of corn": ("corn", "maize", "corn on the cob"), "candy": ("sweets", "toffee"),
    "lollipop": ("lolly",), "cheese wedge": ("cheese",), "cut of meat": ("steak",), "poultry leg": ("chicken leg",),
    "meat on bone": ("ham",), "cooked rice": ("rice",), "steaming bowl": ("ramen", "noodle soup"),
    "baguette bread": ("baguette", "french bread"), "bread": ("loaf",), "croissant": ("pastry",),
    "pancakes": ("pancake",), "waffle": ("waffles",), "cocktail glass": ("cocktail", "martini"),
    "tropical drink": ("cocktail",), "glass of milk": ("milk",), "teacup without handle": ("green tea",),
    "bottle with popping cork": ("champagne",), "clinking glasses": ("cheers",), "watermelon": ("melon slice",),
    "strawberry": ("strawberries",), "cherries": ("cherry",), "grapes": ("grape", "bunch of grapes"),
    "banana": ("bananas",), "peach": ("apricot",), "lemon": ("lime",), "potato": ("spud",),
    "roasted sweet potato": ("yam",), "carrot": ("carrots",), "green salad": ("salad",),
    "taco": ("tacos",), "burrito": ("wrap",), "sushi": ("maki",), "egg": ("fried egg",), "popcorn": ("pop corn",),
    "chocolate bar": ("chocolate",), "custard": ("pudding", "flan"), "pie": ("tart",), "honey pot": ("honey",),
    # plants
    "deciduous tree": ("tree", "oak", "oak tree"), "evergreen tree": ("pine tree", "fir tree", "pine"),
    "palm tree": ("palm",), "rose": ("red rose",), "four leaf clover": ("clover", "lucky clover"),
    "shamrock": ("clover",), "seedling": ("sprout", "sapling"), "potted plant": ("houseplant", "plant pot", "pot plant"),
    "bouquet": ("bunch of flowers", "flowers", "posy"), "herb": ("basil", "mint", "parsley"),
    "cherry blossom": ("sakura", "pink blossom"), "fallen leaf": ("autumn leaf", "dead leaf"),
    "maple leaf": ("autumn leaf",), "mushroom": ("toadstool", "fungus"), "tulip": ("tulips",),
    "sunflower": ("sunflowers",), "cactus": ("cacti", "succulent"), "hibiscus": ("tropical flower",),
    "wilted flower": ("dead flower", "dying flower"), "white flower": ("daisy",), "blossom": ("flower",),
    # hands
    "thumbs up": ("thumbs-up", "approval"), "thumbs down": ("thumbs-down", "dislike"),
    "waving hand": ("hello", "goodbye", "wave hello"), "ok hand": ("okay", "okay sign"),
    "clapping hands": ("applause", "round of applause"), "folded hands": ("praying hands", "prayer"),
    "raised hand": ("hand up", "stop hand"), "raised fist": ("power fist",), "oncoming fist": ("fist bump",),
    "crossed fingers": ("fingers crossed", "good luck"), "call me hand": ("shaka", "hang loose"),
    "writing hand": ("hand writing",), "handshake": ("shaking hands", "deal"),
    # hearts
    "red heart": ("love heart", "valentine"), "broken heart": ("heartbreak", "heartbroken"),
    "beating heart": ("heartbeat",), "sparkling heart": ("sparkly heart",), "two hearts": ("love hearts",),
    "heart with arrow": ("cupid",), "black heart": ("dark heart",),
    # faces
    "grinning face": ("smiley", "smiley face", "happy face"), "slightly smiling face": ("smiley", "smile"),
    "face with tears of joy": ("laughing face", "crying laughing", "lol"), "rolling on the floor laughing": ("rofl",),
    "smiling face with heart-eyes": ("heart eyes", "in love"), "crying face": ("sad face", "tearful face"),
    "loudly crying face": ("sobbing face", "sobbing"), "winking face": ("wink",), "thinking face": ("hmm",),
    "face blowing a kiss": ("kissy face", "blowing a kiss"), "smiling face with sunglasses": ("shades",),
    "face with rolling eyes": ("eye roll", "eyeroll"), "sleeping face": ("asleep", "zzz"),
    "nauseated face": ("sick face", "nausea"), "face vomiting": ("puke", "throwing up"),
    "hot face": ("sweating face", "overheated"), "cold face": ("freezing face", "frozen face"),
    "pile of poo": ("poop", "poo emoji"), "face screaming in fear": ("scream", "scared face"),
    "exploding head": ("mind blown",), "partying face": ("party face",), "zipper-mouth face": ("zip it",),
    # symbols
    "red circle": ("red dot",), "blue circle": ("blue dot",), "green circle": ("green dot",),
    "yellow circle": ("yellow dot",), "black circle": ("black dot",), "white circle": ("white dot",),
    "red square": ("red box",), "blue square": ("blue box",), "green square": ("green box",),
    "black large square": ("black box",), "white large square": ("white box",),
    "plus": ("plus sign", "add"), "minus": ("minus sign", "subtract"), "multiply": ("times sign", "multiplication sign"),
    "divide": ("division sign",), "heavy equals sign": ("equals", "equal sign"), "infinity": ("infinity sign", "forever"),
    "keycap #": ("hashtag", "hash sign", "pound sign"), "keycap *": ("asterisk", "star key"),
    "peace symbol": ("peace sign",), "yin yang": ("yin and yang",), "latin cross": ("cross", "christian cross"),
    "atom symbol": ("atom",), "information": ("info", "info sign"), "play button": ("play symbol", "play icon"),
    "pause button": ("pause symbol", "pause icon"), "stop button": ("stop symbol",),
    "fast-forward button": ("fast forward",), "record button": ("record symbol",), "repeat button": ("repeat", "loop"),
    "shuffle tracks button": ("shuffle",), "up arrow": ("arrow up", "arrow pointing up"),
    "down arrow": ("arrow down", "arrow pointing down"), "left arrow": ("arrow left", "arrow pointing left"),
    "right arrow": ("arrow right", "arrow pointing right"), "sos button": ("sos", "help sign"),
    "wireless": ("wifi", "wi-fi"), "antenna bars": ("signal", "phone signal"),
}

NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
KEYCAP = re.compile(r"^keycap (\d+)$")


def clock_times(name: str) -> tuple[str, ...]:
    """ "three o'clock" -> "3 o'clock", "3:00", "clock at three"...; "three-thirty" -> "half past three", "3:30"."""
    hour, kind = _clock_hour(name)
    if hour is None:
        return ()
    digit = str(NUMBERS.index(hour) + 1)
    if kind == "o'clock":
        return (f"{digit} o'clock", f"{digit}:00", f"{hour} oclock", f"clock at {hour}", f"clock at {digit}",
                f"clock showing {digit}")
    return (f"half past {hour}", f"half {hour}", f"{digit}:30", f"{hour} thirty", f"clock at {digit}:30",
            f"half past {digit}")


def _clock_hour(name: str) -> tuple[str | None, str]:
    for kind, pattern in (("o'clock", r"^(\w+) o'clock$"), ("thirty", r"^(\w+)-thirty$")):
        match = re.match(pattern, name)
        if match and match.group(1) in NUMBERS:
            return match.group(1), kind
    return None, ""


def keycap_words(name: str) -> tuple[str, ...]:
    """ "keycap 3" -> "number 3", "number three", "the digit 3"."""
    match = KEYCAP.match(name)
    if not match:
        return ()
    digits = match.group(1)
    spelt = ("zero",) + NUMBERS
    words = [f"number {digits}", f"digit {digits}"] + ([f"number {spelt[int(digits)]}"] if int(digits) <= 12 else [])
    return tuple(words)


def candidate_synonyms(name: str) -> tuple[str, ...]:
    """Every everyday word written down for one emoji (its name without skin tones), before any check."""
    return SYNONYMS.get(name, ()) + clock_times(name) + keycap_words(name)


def is_everyday(phrase: str, zipf=None) -> bool:
    """Every word of the phrase is one people type (digits and times always are)."""
    if zipf is None:
        import wordfreq

        zipf = lambda w: wordfreq.zipf_frequency(w, "en")  # noqa: E731 - a default the tests can replace
    words = re.findall(r"[a-z]+", phrase.replace("o'clock", ""))
    return all(zipf(w) >= EVERYDAY_ZIPF for w in words)


def everyday_synonyms(names: list[str], other_names: set[str], own_words: list[set[str]],
                      zipf=None) -> list[tuple[str, ...]]:
    """For each emoji name, its synonyms that are everyday words, are no other emoji's name or alias
    (`other_names`, all names and aliases lower case) and say something its own words (`own_words`) do not."""
    out = []
    for name, own in zip(names, own_words, strict=True):
        keep = [s for s in dict.fromkeys(candidate_synonyms(name))
                if s not in own and (s not in other_names or s == name) and is_everyday(s, zipf)]
        out.append(tuple(keep))
    return out
