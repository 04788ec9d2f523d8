"""Sample data: the gateway token, complaint bodies, intake settings, one context per message type."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import SecretStr

from kefu.notifications import MessageType
from kefu.settings import Settings
from tests.support.clock import SHANGHAI

TOKEN = "gateway-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def intake_settings(**overrides: Any) -> Settings:
    """Settings of an intake app that knows ``TOKEN`` and starts no mail sink."""
    return Settings(**{"intake_api_tokens": [SecretStr(TOKEN)], "mail_sink_enabled": False, **overrides})


def complaint_json(**overrides: Any) -> dict[str, Any]:
    """A complete, valid complaint as a gateway posts it; ``overrides`` replace fields."""
    body: dict[str, Any] = {
        "channel": "hotline",
        "name": "张三",
        "phone": "13800138000",
        "email": "zhang.san@example.com",
        "order_no": "SF1234567890",
        "product": "同城快递",
        "place": "北京市海淀区中关村大街1号",
        "problem_at": "2026-11-22 15:30",
        "content": "包裹外箱破损，里面的杯子碎了，希望赔偿。",
        "urgent": False,
        "preferred_contact_time": "工作日下午",
    }
    body.update(overrides)
    return body


DUE = dt.datetime(2026, 11, 24, 18, 0, tzinfo=SHANGHAI)

# The fields every standard phrase on a case carries (``kefu message send``).
_CASE: dict[str, Any] = {"customer_name": "张三", "case_no": "TS-20261123-0001", "owner_name": "李客服"}

CONTEXTS: dict[MessageType, dict[str, Any]] = {
    MessageType.COMPLAINT_ACKNOWLEDGEMENT: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "next_contact_at": DUE,
    },
    MessageType.MAJOR_APOLOGY: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "task_force_lead": "王总",
        "commitment": "全额赔偿破损货物，并免费重新发货。",
        "next_contact_at": DUE,
    },
    MessageType.PROGRESS_UPDATE: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "progress": "已与承运方核实破损情况，赔偿申请已提交财务。",
        "next_contact_at": DUE,
    },
    MessageType.SOLUTION_PROPOSAL: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "solution": "补发同款货物一件，并退还本单运费。",
        "reply_by": DUE,
        "answer_url": "http://127.0.0.1:8000/answer/abc",
    },
    MessageType.RESOLUTION_NOTICE: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "resolution": "补发货物已签收，运费已退还。",
    },
    MessageType.CALLBACK_INVITATION: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "callback_by": DUE,
    },
    MessageType.PROGRESS_CONTACT_DUE: {
        "recipient_name": "李客服",
        "case_no": "TS-20261123-0001",
        "severity": "一般投诉",
        "due_at": DUE,
        "last_contact_at": DUE - dt.timedelta(days=3),
    },
    MessageType.CASE_CLOSURE: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "closed_at": DUE,
    },
    MessageType.SUPERVISOR_ESCALATION: {
        "recipient_name": "赵主管",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "severity": "重要",
        "milestone": "上报主管",
        "due_at": DUE,
        "reason": "客户要求立即处理",
        "customer_phone": "13812348000",
    },
    MessageType.PRE_BREACH_WARNING: {
        "recipient_name": "李客服",
        "case_no": "TS-20261123-0001",
        "milestone": "首次联系",
        "due_at": DUE,
    },
    MessageType.TASK_FORCE_ASSIGNMENT: {
        "recipient_name": "孙经理",
        "case_no": "TS-20261123-0001",
        "lead_name": "王总",
        "due_at": DUE,
    },
    MessageType.KEY_ACCOUNT_WELCOME: {
        "customer_name": "某某贸易有限公司",
        "manager_name": "周经理",
        "manager_phone": "020-88886666",
    },
    MessageType.CONTACT_CADENCE_REMINDER: {
        "recipient_name": "周经理",
        "customer_name": "某某贸易有限公司",
        "cadence": "重点客户每月至少一次电话或面访",
        "due_at": DUE,
    },
    MessageType.FOLLOW_UP_DUE: {
        "recipient_name": "周经理",
        "customer_code": "C000123",
        "item": "发送新报价",
        "due_on": "2026年12月10日",
        "follow_up_id": 12,
    },
    MessageType.KPI_IMPROVEMENT_TASK: {
        "recipient_name": "周经理",
        "customer_code": "C000123",
        "month": "2026年11月",
        "kpi_name": "准时交付率",
        "value": "91.0%",
        "target": "不低于95.0%",
    },
    MessageType.CONTACT_CADENCE_OVERDUE: {
        "recipient_name": "李主管",
        "customer_code": "C000123",
        "customer_name": "某某贸易有限公司",
        "cadence": "重点客户每月至少一次电话或拜访或会议联系",
        "period": "2026-09",
        "due_at": DUE,
        "owner_name": "周经理",
    },
    MessageType.HOLIDAY_GREETING: {"customer_name": "张三", "holiday_name": "春节"},
    MessageType.STATISTICS_REPORT: {
        "recipient_name": "公司管理层",
        "period_title": "2026年11月投诉统计月报",
        "period_range": "2026-11-01 至 2026-11-30",
        "total": 12,
        "tables": [
            {"title": "按投诉等级", "columns": ["投诉等级", "投诉数"], "rows": [["一般投诉", "12"], ["合计", "12"]]}
        ],
        "pending": [{"title": "净推荐值（NPS）", "note": "暂无数据：本期没有满意度调查回复。"}],
    },
    MessageType.SURVEY_INVITATION: {
        "customer_name": "某某贸易有限公司",
        "survey_title": "年度全面调查（全部客户）",
        "survey_url": "https://kefu.example.com/survey/abc123",
        "reply_by": DUE,
    },
    MessageType.SURVEY_LOW_SCORE: {
        "recipient_name": "周经理",
        "customer_code": "HX01",
        "customer_name": "某某贸易有限公司",
        "team_role": "项目经理",
        "low_scores": "服务态度2分、推荐意愿5分",
        "comment": "上次联系电话13800138000一直没人接",
        "answer_id": "7",
        "collected_by": "问卷链接",
    },
    MessageType.KEY_ACCOUNT_TEAM_ASSIGNMENT: {
        "recipient_name": "周经理",
        "customer_code": "C000123",
        "customer_name": "某某贸易有限公司",
        "team_role": "项目经理",
    },
    MessageType.ONBOARDING_REVIEW_OVERDUE: {
        "recipient_name": "李主管",
        "customer_code": "C000123",
        "department": "财务部",
        "due_at": DUE,
    },
    MessageType.ASSESSMENT_SHEET: {
        "recipient_name": "王客服",
        "month": "2026-11",
        "sheets": [
            [{"label": "名次", "value": "1"}, {"label": "员工", "value": "王客服"}, {"label": "总分", "value": "82.09"}]
        ],
        "note": "总分按上级评价50%、客户评价30%、自我评价20%加权（0–100分）。",
    },
    MessageType.ASSESSMENT_OVERDUE: {
        "recipient_name": "李主管",
        "month": "2026-11",
        "staff_name": "王客服",
        "late_name": "王客服",
        "evaluator": "自我评价",
        "due_at": DUE,
    },
    MessageType.SERVICE_PLAN_PART_OVERDUE: {
        "recipient_name": "李主管",
        "customer_code": "C000123",
        "department": "运营部",
        "due_at": DUE,
    },
    MessageType.SERVICE_AGREEMENT_RENEWAL: {
        "recipient_name": "王经理",
        "customer_code": "C000123",
        "customer_name": "某某制造有限公司",
        "document_ref": "FW-2026-001",
        "ends_on": "2027年03月31日",
    },
    MessageType.SERVICE_REPORT: {
        "customer_name": "刘女士",
        "month_title": "2026年10月",
        "order_on_time_rate": "98.0%",
        "delivery_on_time_rate": "90.0%",
        "complaint_rate": "0.5%",
        "order_on_time_floor": "95%",
        "delivery_on_time_floor": "95%",
        "complaint_rate_ceiling": "1%",
        "below": "准时交付率",
        "commitment": "针对未达标的指标，我们已安排项目经理牵头制定改进措施，并将在下月服务报告中向您通报改进进展。",
        "project_manager": "陈项目（电话021-64001234，邮箱chen@kefu.example）",
    },
    MessageType.ORDER_CHASE: {**_CASE, "order_status": "可发货，已排入12月3日的发货计划"},
    MessageType.FREIGHT_QUERY: dict(_CASE),
    MessageType.DAMAGED_GOODS: {**_CASE, "damage_detail": "乳胶漆2桶外包装破损"},
    MessageType.PRODUCT_DOUBT: dict(_CASE),
    MessageType.MISSING_ACCESSORIES: {**_CASE, "accessory": "木器漆固化剂1件"},
    MessageType.ENQUIRY_REPLY: {
        "customer_name": "张三",
        "enquiry_no": "ZX-20261123-0001",
        "owner_name": "李客服",
        "reply": "您的货物已于今天上午发出，预计明天送达。",
    },
    MessageType.FEEDBACK_REPLY: {
        "customer_name": "张三",
        "feedback_no": "FK-20261123-0001",
        "kind_name": "建议",
        "reply": "我们将从下月起增加周末提货时段。",
    },
    MessageType.ENQUIRY_ESCALATION: {
        "recipient_name": "赵主管",
        "enquiry_no": "ZX-20261123-0001",
        "owner_name": "李客服",
        "target": "1小时内给出解决方案",
        "due_at": DUE,
    },
    MessageType.ROUTINE_CALLBACK: {"customer_name": "某某贸易有限公司", "owner_name": "周经理"},
    MessageType.QUALITY_FLAGGED: {
        "recipient_name": "李客服",
        "record_at": "2026年11月20日 10:15",
        "customer_name": "某某贸易有限公司",
        "summary": "询问运费",
        "scores": "准确性 2、礼貌 4、完整性 3、标准用语 3",
        "reason": "运费标准答错",
        "reviewer": "周主管",
    },
    MessageType.FEEDBACK_ESCALATION: {
        "recipient_name": "赵主管",
        "feedback_no": "FK-20261123-0001",
        "kind_name": "建议",
        "department": "运营部",
        "due_at": DUE,
    },
}
