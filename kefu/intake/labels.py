"""zh-CN display names the customers and staff read: case statuses, intake channels and form fields.

Statuses are written from the customer's side (the status page and the gateways' ``status_label`` show them
to customers). One place for the words, so the form, its error messages, the status page, the API's ``status_label`` and
the communication records all say the same thing.
"""

from __future__ import annotations

from kefu.models.enums import CHANNEL_ZH, ComplaintStatus

__all__ = ["CHANNEL_ZH", "FIELD_LABELS", "STATUS_ZH"]

STATUS_ZH = {
    ComplaintStatus.REGISTERED: "已受理",
    ComplaintStatus.CLASSIFIED: "已受理，专人跟进中",
    ComplaintStatus.INVESTIGATING: "正在调查核实",
    ComplaintStatus.PROPOSING: "正在为您制定解决方案",
    ComplaintStatus.AWAITING_APPROVAL: "解决方案待您确认",
    ComplaintStatus.RESOLVING: "正在按您确认的方案处理",
    ComplaintStatus.RESOLVED: "已处理完毕，我们将回访您的意见",
    ComplaintStatus.CLOSED: "已结案",
}
FIELD_LABELS = {
    "name": "姓名",
    "phone": "联系电话",
    "email": "电子邮箱",
    "order_no": "订单号",
    "order_amount": "订单金额",
    "product": "产品或服务",
    "place": "发生地点",
    "problem_at": "问题发生时间",
    "content": "投诉内容",
    "urgent": "紧急",
    "preferred_contact_time": "方便联系的时间",
    "channel": "渠道",
}


def status_label(status: ComplaintStatus) -> str:
    return STATUS_ZH.get(status, status.value)
