"""Kefu (客服): a company's customer-service policies run as Prefect workflows."""

__version__ = "0.1.0"
