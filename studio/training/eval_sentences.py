"""The evaluation's typed sentences: eight held-out sets of 30, written the way people type, for the ten classes.

No training caption is one of them (tests/engine/test_emoji_captions.py checks; image_stages.HELD_OUT_SENTENCES keeps
the composers off them). Each set was written before the round it measures; see each set's comment.
"""

from __future__ import annotations

# Sentences written the way people type them, for the same classes. Held out: no training caption is one of
# these (tests/engine/test_emoji_captions.py checks), so they measure whether the model reads sentences.
PARAPHRASE_PROMPTS = {
    "face": ("a happy smiling face", "sad crying face emoji", "a laughing face with tears"),
    "heart": ("a big red love heart", "blue heart shape", "a heart for valentine's day"),
    "flag": ("the national flag of japan", "flag of germany please", "a french flag waving"),
    "animal": ("a cute puppy", "a kitty cat", "picture of a little bird"),
    "food": ("a slice of pepperoni pizza", "a juicy burger", "a shiny red apple"),
    "plant": ("a yellow sunflower in bloom", "a pink rose flower", "a big green tree"),
    "vehicle": ("a shiny blue car", "a city bus", "a jet plane in the sky"),
    "clock": ("an alarm clock ringing", "a clock showing one o'clock", "what time is it clock"),
    "hand": ("a hand giving a thumbs up", "a waving hand saying hello", "an ok hand gesture"),
    "symbol": ("the number one in a box", "a big red circle", "an arrow pointing up"),
}
# A second set, written before round 4's captions were trained, and never looked at to design them (set A's
# per-sentence scores were). Set A told round 4 what went wrong, so set B is the honest measure of round 4.
FRESH_SENTENCES = {
    "face": ("a really angry face", "a winking face emoji please", "a sleepy face with closed eyes"),
    "heart": ("a purple love heart", "a yellow heart for a friend", "an orange heart shape"),
    "flag": ("the italian flag", "an american flag", "the brazilian flag"),
    "animal": ("a fluffy white rabbit", "a brown monkey face", "a pink pig"),
    "food": ("a bunch of purple grapes", "a hot dog with mustard", "a ripe yellow banana"),
    "plant": ("a red tulip in spring", "a green cactus plant", "a four leaf clover for luck"),
    "vehicle": ("a red fire truck", "a fast racing car", "a bicycle to ride"),
    "clock": ("a clock at three", "an old wrist watch", "a timer counting down"),
    "hand": ("a hand making a peace sign", "two hands clapping", "a fist raised in the air"),
    "symbol": ("a plain blue square shape", "a red x mark", "an arrow pointing left"),
}
# Set C, written once round 5's captions were designed (set B's flag sentences, all country adjectives, had moved
# that design: its table of adjectives) and before round 5 was scored; nothing has been designed from it.
UNSEEN_SENTENCES = {
    "face": ("a face blowing a kiss to you", "an upset face for my sister", "a surprised face with its mouth open"),
    "heart": ("a green heart for st patrick's day", "my heart is broken", "a pink heart with sparkles"),
    "flag": ("canada's national flag", "a spanish flag for the football", "the swedish flag in the wind"),
    "animal": ("a happy dog", "an owl at night", "a tiger face roaring"),
    "food": ("a strawberry for dessert", "a slice of watermelon", "a cup of hot coffee"),
    "plant": ("a tall palm tree", "a bouquet of flowers for my mum", "an autumn maple leaf"),
    "vehicle": ("a yellow taxi cab", "a big ship at sea", "a helicopter flying"),
    "clock": ("a clock that says six", "an hourglass", "a stopwatch for running"),
    "hand": ("thumbs down, i don't like it", "a finger pointing right", "fingers crossed for good luck"),
    "symbol": ("a big plus sign", "the number seven", "a play button for a video"),
}
# Set D, written once round 6's synonyms were designed (studio/data/synonyms.py) and before round 6 was trained or
# scored. Set C's per-class figures shaped round 6 (clocks, animals), so set D is the honest measure of round 6.
BLIND_SENTENCES = {
    "face": ("a shocked face with its mouth wide open", "an emoji crying its eyes out", "a grumpy face, not happy at all"),
    "heart": ("a heart that is on fire", "two hearts for valentine's day", "a green heart for earth day"),
    "flag": ("the japanese flag waving in the wind", "a canadian flag with the maple leaf", "the german flag for the match"),
    "animal": ("a tiny mouse with a long tail", "an elephant with big ears", "a little brown horse running"),
    "food": ("a slice of watermelon on a hot day", "a bowl of ramen noodles", "a cheeseburger with fries"),
    "plant": ("a tall green cactus in the desert", "a pink tulip in spring", "a big leafy tree in summer"),
    "vehicle": ("a red sports car", "a bus full of kids going to school", "a boat with a white sail"),
    "clock": ("a clock at noon", "an old alarm clock ringing", "a clock showing quarter past two"),
    "hand": ("a hand giving a high five", "two hands clapping at a concert", "a hand pointing down at the text"),
    "symbol": ("an arrow going back to the left", "the zodiac sign for leo", "a rewind button for my music player"),
}
# Set E, written at the start of round 7, before its tokenizer growth and captions were built or anything scored.
# Set D's sentences were never looked at one by one; set E is the honest measure of round 7.
SEALED_SENTENCES = {
    "face": ("a smiley winking at me", "a sick face with a thermometer in its mouth", "a face rolling its eyes"),
    "heart": ("a heart with an arrow through it", "a black heart for halloween", "a big white heart on my card"),
    "flag": ("the flag of mexico for the party", "the british flag at the olympics", "a little indian flag"),
    "animal": ("a panda bear eating bamboo", "a fox with a bushy tail", "a cow in a field"),
    "food": ("a bunch of ripe bananas", "a plate of spaghetti", "a pear for my lunch box"),
    "plant": ("a red rose for my wife", "a little seedling growing", "a pine tree in the snow"),
    "vehicle": ("a train leaving the station", "a police car with its lights on", "a plane taking off"),
    "clock": ("a clock showing ten o'clock", "a clock on the wall at half past six", "a clock that says it's five"),
    "hand": ("a hand waving goodbye", "a fist bump", "a hand doing the rock on sign"),
    "symbol": ("a minus sign for my maths homework", "the star sign for scorpio", "a pause button on the remote"),
}
# Set F, written at the start of round 8's session, before anything of it was designed, built or scored. Set E's
# sentences were never looked at one by one; set F is the honest measure of what this session changes.
SPARE_SENTENCES = {
    "face": ("a nervous face sweating", "a cool face with sunglasses", "a face with hearts for eyes"),
    "heart": ("a brown love heart", "a heart with a ribbon on it for a present", "a beating heart for my boyfriend"),
    "flag": ("the australian flag", "a south korean flag", "the flag of ireland for the parade"),
    "animal": ("a lion with a big mane", "a penguin on the ice", "a frog sitting by the pond"),
    "food": ("a birthday cake with candles", "a crunchy orange carrot", "a croissant for breakfast"),
    "plant": ("pink cherry blossom on a branch", "a potted plant for the window", "a leaf blowing in the wind"),
    "vehicle": ("an ambulance with its siren on", "a kid's scooter", "a tractor on the farm"),
    "clock": ("a clock showing eight o'clock", "a clock at half past eleven", "a watch on my wrist"),
    "hand": ("two hands pressed together praying", "a hand pointing up at the sky", "a call me hand sign"),
    "symbol": ("number 3", "a division sign", "a yin yang symbol"),
}
# Set G, written at the start of round 9's session (2026-12-07), before set F was looked at one sentence at a time
# and before anything of round 9 was designed. From here on set F may guide design; set G is the honest measure.
UNOPENED_SENTENCES = {
    "face": ("a face sticking its tongue out", "a face with a medical mask on", "a thinking face with a hand on its chin"),
    "heart": ("a heart with a bandage on it", "a heart growing bigger and bigger", "an orange heart for autumn"),
    "flag": ("the chinese flag", "a greek flag on a boat", "the swiss flag on a mountain top"),
    "animal": ("a koala hugging a tree", "a wolf howling at night", "a little hamster face"),
    "food": ("a taco for dinner", "a wedge of cheese", "a bowl of green salad"),
    "plant": ("a hibiscus flower on the beach", "a bunch of fresh herbs", "an evergreen tree on the hill"),
    "vehicle": ("a motorbike on the road", "a blue delivery truck", "a rocket going to space"),
    "clock": ("a clock showing four o'clock", "a clock at half past nine", "a mantel clock on the shelf"),
    "hand": ("a hand saying stop", "the vulcan salute from star trek", "a hand writing with a pen"),
    "symbol": ("a red triangle pointing up", "the number ten", "the sign for aries"),
}
# Set H, written at the start of round 10's session (2026-12-07), before round 10 was trained or scored; round 10
# (a wider share of round 9's kin captions) was designed from round 9's check of held-out words by name, not from
# any set's sentences. Set G was only ever looked at per class; set H is the honest measure of round 10. Two
# sentences were first written as training captions ("the flag of portugal", "a star of david") and were lengthened.
UNTOUCHED_SENTENCES = {
    "face": ("a yawning face at bedtime", "a face with a monocle looking closely",
             "a face keeping a secret with its mouth zipped"),
    "heart": ("a pink heart for mother's day", "two hearts going round and round", "a light blue heart for a baby boy"),
    "flag": ("portugal's flag on a football shirt", "a dutch flag for king's day", "the argentinian flag at the world cup"),
    "animal": ("a giraffe with a long neck", "a parrot that can talk", "a sleepy sloth hanging from a branch"),
    "food": ("a bowl of popcorn at the movies", "a stack of pancakes with syrup", "a fresh coconut"),
    "plant": ("a lotus flower floating on a pond", "a fallen leaf in autumn", "a wilted flower that needs water"),
    "vehicle": ("a sailboat on the lake", "a steam train puffing smoke", "a flying saucer from space"),
    "clock": ("a stopwatch for the race", "a clock showing seven o'clock", "a clock at half past one"),
    "hand": ("a hand pinching its fingers together", "two hands making a heart", "a hand with its palm facing down"),
    "symbol": ("the number zero", "the shuffle button on my playlist", "a star of david for hanukkah"),
}
SENTENCE_SETS = {"paraphrase": PARAPHRASE_PROMPTS, "fresh_sentence": FRESH_SENTENCES,
                 "unseen_sentence": UNSEEN_SENTENCES, "blind_sentence": BLIND_SENTENCES,
                 "sealed_sentence": SEALED_SENTENCES, "spare_sentence": SPARE_SENTENCES,
                 "unopened_sentence": UNOPENED_SENTENCES, "untouched_sentence": UNTOUCHED_SENTENCES}
PER_CLASS_KEYS = {"paraphrase": "paraphrases", "fresh_sentence": "fresh_sentences",
                  "unseen_sentence": "unseen_sentences", "blind_sentence": "blind_sentences",
                  "sealed_sentence": "sealed_sentences", "spare_sentence": "spare_sentences",
                  "unopened_sentence": "unopened_sentences",
                  "untouched_sentence": "untouched_sentences"}  # the card's columns
