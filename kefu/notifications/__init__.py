"""Notifications: one message type = one enum value, one template, one builder; the mailer."""
