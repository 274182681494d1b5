"""The few KB of text the tiny tokenizers are trained on (fixed, so every build is identical).

It mixes plain English with accented, CJK and emoji text so that detokenization of multi-byte
characters split across tokens is exercised by the tiny models too.
"""

from __future__ import annotations

_ENGLISH = """
The quick brown fox jumps over the lazy dog. A picture is worth a thousand words.
Describe the image in one sentence. What is in this video? Listen to the audio and answer.
The cat sat on the mat and looked at the red ball. Two birds fly over a green field at noon.
There is a small house near the river, with a wooden door and three windows.
The weather today is sunny with a light wind from the west, and the sky is clear and blue.
Please count the objects on the table: one cup, two plates, three spoons and a knife.
A man is walking his dog along the beach while the waves roll in slowly.
The train leaves the station at seven o'clock and arrives in the city before nine.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14 -7 +12 50% $20.
Questions and answers: Who? What? Where? When? Why? How? Yes. No. Maybe.
The assistant answers the user's question with a short, helpful and honest reply.
She said, "I don't know," and he replied, "We'll see." It's fine; they're here.
Colors: red, orange, yellow, green, blue, indigo, violet, black, white and gray.
In the morning the market is busy: people buy bread, fruit, fish and fresh flowers.
The robot picked up the box, turned left, and placed it gently on the shelf.
"""

_MULTILINGUAL = """
Café crème, naïve façade, über straße, niño, coöperate, déjà vu, résumé.
東京は日本の首都です。猫が好きです。今日は天気がいいです。
北京是中国的首都。我喜欢学习。这是一张图片。
Привет, как дела? Это изображение.
🙂 😀 🐱 🐶 🚀 ✨ 👍 ❤️ 🎉
"""


def corpus() -> list[str]:
    """Training lines: the English block weighs more, so merges favour English words."""
    lines = [line.strip() for line in (_ENGLISH * 3 + _MULTILINGUAL).splitlines()]
    return [line for line in lines if line]
