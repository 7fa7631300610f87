"""A small generated English-like corpus with a Zipfian vocabulary (for pipeline tests)."""

import random
from pathlib import Path

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no will more "
         "what up out who about them can some time only into could also other two than then like these its "
         "very after first new made over did many years most may where before just well way people river "
         "city music language history school water village government paper model position encoding "
         "attention language training layer token sentence word library research").split()


def sentence(rng):
    n = rng.randint(4, 16)
    ws = [WORDS[min(int(rng.paretovariate(0.9)) - 1, len(WORDS) - 1)] for _ in range(n)]
    if rng.random() < 0.2:
        ws.insert(rng.randint(0, len(ws)), rng.choice(["state-of-the-art", "(really)", '"quoted"', "e-mail"]))
    text = " ".join(ws)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "?"])


def make_corpus(path: Path, paragraphs=300, seed=0, wiki=False):
    rng = random.Random(seed)
    lines = []
    for i in range(paragraphs):
        if wiki and i % 20 == 0:
            lines.append(f'<doc id="{i}" url="https://x/{i}" title="T{i}">')
        para = " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))
        if i % 10 == 3:   # a hard-wrapped paragraph: the second half starts lower-case
            cut = para.index(" ", len(para) // 2)
            lines += [para[:cut], para[cut + 1:].lower()]
        else:
            lines.append(para)
        if i % 25 == 0:
            lines.append("Short junk.")
        if i % 40 == 0:
            lines.append("|Infobox leftover text with many letters inside one table cell entry here")
        if wiki and i % 20 == 19:
            lines.append("</doc>")
        elif i % 7 == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
