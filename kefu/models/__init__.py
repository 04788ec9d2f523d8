"""The system of record: ORM tables, the session factory and the policy model."""

from kefu.models.base import Base, UTCDateTime, utcnow
from kefu.models.complaints import AuditTrailIsAppendOnly, CaseEvent, Complaint, Milestone, PolicySnapshot
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, MilestoneId, Role, Severity
from kefu.models.people import CommunicationRecord, Customer, CustomerPhone, Staff, StaffRole

__all__ = [
    "AuditTrailIsAppendOnly",
    "Base",
    "CaseEvent",
    "Channel",
    "CommunicationRecord",
    "Complaint",
    "ComplaintStatus",
    "Customer",
    "CustomerPhone",
    "CustomerTier",
    "Milestone",
    "MilestoneId",
    "PolicySnapshot",
    "Role",
    "Severity",
    "Staff",
    "StaffRole",
    "UTCDateTime",
    "utcnow",
]

# Tables of later parts register themselves on Base.metadata when imported.
from kefu.models import access as access
from kefu.models import accounts as accounts
from kefu.models import answers as answers
from kefu.models import assessment as assessment
from kefu.models import cadence as cadence
from kefu.models import contacts as contacts
from kefu.models import enquiries as enquiries
from kefu.models import intake as intake
from kefu.models import notifications as notifications
from kefu.models import personal_data as personal_data
from kefu.models import service_plans as service_plans
from kefu.models import signin as signin
from kefu.models import surveys as surveys
