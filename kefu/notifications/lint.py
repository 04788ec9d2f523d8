"""The phrase lint: what seed 002 forbids (§五 客服忌语), rude patterns, polite forms, required elements.

Every message is linted after rendering and before it reaches the outbox; a message with findings
is never sent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """The four categories of forbidden phrases in seed 002 §五, plus Kefu's own checks."""

    DIRECT_ADDRESS = "直呼客户"
    INTERROGATION = "反问、质问客户"
    EVASION = "推诿、搪塞客户"
    IMPATIENCE = "厌烦、训斥客户"
    RUDE_PATTERN = "不礼貌语气"
    MISSING_POLITE_FORM = "缺少礼貌用语"
    MISSING_ELEMENT = "缺少必备内容"


# Seed 002 §五, in simplified Chinese. Matching ignores spaces and treats full- and half-width
# punctuation alike; the question mark is kept where the bare word is harmless ("有什么能帮您").
FORBIDDEN: dict[Category, tuple[str, ...]] = {
    Category.DIRECT_ADDRESS: ("喂", "嘿你"),
    Category.INTERROGATION: (
        "干嘛",
        "什么?",
        "怎样?",
        "你怎么这样",
        "你有完没完",
        "我怎么知道",
        "谁告诉你的",
        "我态度怎样",
        "怎么还不挂机",
        "你到底想怎么样",
        "你问我,我问谁",
        "你有没有搞错",
        "你到底知不知道",
        "请你听清楚好吗",
        "说话这么快给谁听",
        "刚才跟你说过了",
        "怎么还问",
        "别人跟你说的",
        "别人怎么知道",
        "你不是要查吗",
        "你到底要不要查",
        "你要不要听我说",
        "你听不听我说",
        "你是无理取闹",
        "我已经跟你说了很多遍",
        "你还不明白吗",
        "我不是跟你说得很清楚了吗",
        "我不是已经跟你解释很多次了",
    ),
    Category.EVASION: (
        "没这回事",
        "你自己先查清楚",
        "我不清楚",
        "我不知道",
        "我没法查",
        "我也没办法",
        "是你自己说的",
        "不是我说的",
        "我查不到",
        "电话去查",
        "这不关我的事",
        "这不是我的错",
        "我没办法听明白你的意思",
        "恕我愚昧",
        "我们是有时间限制的",
        "不能跟客户讲太久",
        "领导不在",
        "领导没空",
        "领导的电话号码当然不能告诉你",
    ),
    Category.IMPATIENCE: (
        "不可能!",
        "对,没错!",
        "不行就是不行",
        "我就这种态度",
        "有什么了不起",
        "不想用就别用",
        "大声点,我听不清",
        "你小声一点行不行",
        "我态度哪里不好",
    ),
}

# Seed 002 §四 11/12: colloquial particles and harsh punctuation.
RUDE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("非礼貌性语气助词（嘍、嘛）", re.compile(r"[喽嘍嘛](?:[!?,.。]|$)", re.MULTILINE)),
    ("连续感叹号或问号", re.compile(r"[!?]{2,}")),
    ("训斥用语", re.compile(r"你们?(?:必须|给我|少来|别烦)")),
)

# Seed 002 §三: 请、您好、谢谢、对不起、再见 — a customer message greets, says please or thanks.
GREETINGS = ("您好",)
THANKS = ("谢谢", "感谢", "请")

_PUNCT = str.maketrans({"，": ",", "！": "!", "？": "?", "、": ",", "：": ":", "；": ";"})


def normalise(text: str) -> str:
    """NFKC, full-width punctuation folded to ASCII, whitespace removed."""
    folded = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    return re.sub(r"\s+", "", folded)


_NEEDLES = [(category, phrase, normalise(phrase)) for category, phrases in FORBIDDEN.items() for phrase in phrases]


@dataclass(frozen=True)
class Finding:
    category: Category
    detail: str

    def __str__(self) -> str:
        return f"{self.category.value}：{self.detail}"


def lint_text(text: str, *, customer_facing: bool) -> list[Finding]:
    """Findings of the phrase lint for one rendered text (subject and body together)."""
    flat = normalise(text)
    findings: list[Finding] = []
    for category, phrase, needle in _NEEDLES:
        if needle in flat:
            findings.append(Finding(category, phrase))
    for label, pattern in RUDE_PATTERNS:
        match = pattern.search(flat)
        if match:
            findings.append(Finding(Category.RUDE_PATTERN, f"{label}「{match.group(0)}」"))
    if customer_facing:
        if not any(g in flat for g in GREETINGS):
            findings.append(Finding(Category.MISSING_POLITE_FORM, "缺少问候语「您好」"))
        if not any(t in flat for t in THANKS):
            findings.append(Finding(Category.MISSING_POLITE_FORM, "缺少「请」「谢谢」等礼貌用语"))
    return findings


def all_forbidden() -> list[tuple[Category, str]]:
    """Every (category, phrase) pair of seed 002 §五, for tables and tests."""
    return [(category, phrase) for category, phrases in FORBIDDEN.items() for phrase in phrases]
