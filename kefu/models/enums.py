"""Enumerations stored in the database (as strings, so both SQLite and PostgreSQL read them plainly)."""

from __future__ import annotations

from enum import StrEnum

from kefu.models.policy import MilestoneId, Role, Severity

__all__ = [
    "Channel",
    "ComplaintStatus",
    "CustomerTier",
    "MilestoneId",
    "Role",
    "Severity",
]


class CustomerTier(StrEnum):
    GENERAL = "general"  # 一般客户
    KEY = "key"  # 重点客户


class Channel(StrEnum):
    """Where a complaint or a contact came in (seed 003 §3.1)."""

    HOTLINE = "hotline"  # 客服热线
    EMAIL = "email"  # 电子邮件
    WEB = "web"  # 网站
    IM = "im"  # 在线客服
    FACE_TO_FACE = "face_to_face"  # 面谈
    SOCIAL = "social"  # 社交媒体
    PHONE = "phone"  # 电话 (outbound contact)
    VISIT = "visit"  # 上门拜访


# The channels' zh-CN names, as customers and staff read them (the form, the status page, the step summaries).
CHANNEL_ZH = {
    Channel.HOTLINE: "客服热线",
    Channel.EMAIL: "电子邮件",
    Channel.WEB: "网站",
    Channel.IM: "在线客服",
    Channel.FACE_TO_FACE: "面谈",
    Channel.SOCIAL: "社交媒体",
    Channel.PHONE: "电话",
    Channel.VISIT: "上门拜访",
}


class ComplaintStatus(StrEnum):
    REGISTERED = "registered"
    CLASSIFIED = "classified"
    INVESTIGATING = "investigating"
    PROPOSING = "proposing"
    AWAITING_APPROVAL = "awaiting_approval"
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    CLOSED = "closed"
