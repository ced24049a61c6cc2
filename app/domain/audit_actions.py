"""The audit log's action names (docs/audit-log.md lists them): each use case's, so that a
refusal names what was refused the way the entry of a success would."""

from __future__ import annotations

from typing import Final

# use case: (action, resource type, the argument naming the resource or None)
ACTIONS: Final[dict[str, tuple[str, str, str | None]]] = {
    # changes: an entry with outcome `ok` when done, `denied` when refused
    "create_assistant": ("assistant.create", "assistant", None),
    "duplicate_assistant": ("assistant.duplicate", "assistant", "assistant_id"),
    "apply_bundle": ("bundle.apply", "organisation", None),
    "update_assistant": ("assistant.update", "assistant", "assistant_id"),
    "delete_assistant": ("assistant.delete", "assistant", "assistant_id"),
    "rotate_secret_key": ("assistant.rotate_secret_key", "assistant", "assistant_id"),
    "restore_revision": ("assistant.restore", "assistant", "assistant_id"),
    "create_integration": ("integration.create", "integration", None),
    "update_integration": ("integration.update", "integration", "integration_id"),
    "delete_integration": ("integration.delete", "integration", "integration_id"),
    "create_action": ("action.create", "action", None),
    "update_action": ("action.update", "action", "action_id"),
    "delete_action": ("action.delete", "action", "action_id"),
    "reorder_actions": ("action.reorder", "assistant", "assistant_id"),
    "publish_release": ("release.publish", "assistant", "assistant_id"),
    "pin_environment": ("environment.pin", "assistant", "assistant_id"),
    "remove_environment": ("environment.remove", "assistant", "assistant_id"),
    "create_avatar": ("avatar.create", "avatar", None),
    "create_api_key": ("api_key.create", "api_key", None),
    "revoke_api_key": ("api_key.revoke", "api_key", "key_id"),
    "create_webhook": ("webhook.create", "webhook", None),
    "update_webhook": ("webhook.update", "webhook", "webhook_id"),
    "delete_webhook": ("webhook.delete", "webhook", "webhook_id"),
    "rotate_webhook_secret": ("webhook.rotate_secret", "webhook", "webhook_id"),
    "redeliver": ("webhook_delivery.redeliver", "webhook_delivery", "delivery_id"),
    "create_test_ping": ("webhook.ping", "webhook", "webhook_id"),
    # reads: an entry only when refused (`denied`)
    "get_assistant": ("assistant.read", "assistant", "assistant_id"),
    "list_assistants": ("assistant.list", "assistant", None),
    "count_assistants": ("assistant.list", "assistant", None),
    "find_assistants": ("assistant.list", "assistant", None),
    "count_found": ("assistant.list", "assistant", None),
    "export_bundle": ("bundle.export", "organisation", None),
    "find_by_ids": ("assistant.read", "assistant", None),
    "watch_changes": ("assistant.watch", "assistant", "assistant_id"),
    "list_assistant_revisions": ("revision.list", "assistant", "assistant_id"),
    "get_assistant_revision": ("revision.read", "assistant", "assistant_id"),
    "list_integrations": ("integration.list", "assistant", "assistant_id"),
    "get_integration": ("integration.read", "integration", "integration_id"),
    "list_actions": ("action.list", "assistant", "assistant_id"),
    "get_action": ("action.read", "action", "action_id"),
    "list_releases": ("release.list", "assistant", "assistant_id"),
    "get_release": ("release.read", "assistant", "assistant_id"),
    "diff_release": ("release.diff", "assistant", "assistant_id"),
    "list_environments": ("environment.list", "assistant", "assistant_id"),
    "read_environment": ("environment.read", "assistant", "assistant_id"),
    "pinned_release": ("environment.read", "assistant", "assistant_id"),
    "check_environments_read": ("environment.list", "assistant", "assistant_id"),
    "list_api_keys": ("api_key.list", "api_key", None),
    "count_api_keys": ("api_key.list", "api_key", None),
    "get_api_key": ("api_key.read", "api_key", "key_id"),
    "list_webhooks": ("webhook.list", "webhook", None),
    "count_webhooks": ("webhook.list", "webhook", None),
    "get_webhook": ("webhook.read", "webhook", "webhook_id"),
    "list_deliveries": ("webhook_delivery.list", "webhook", "webhook_id"),
    "count_deliveries": ("webhook_delivery.list", "webhook", "webhook_id"),
    "get_delivery": ("webhook_delivery.read", "webhook_delivery", "delivery_id"),
    "list_audit_log": ("audit_log.read", "organisation", None),
    "count_audit_log": ("audit_log.read", "organisation", None),
}

# written by the command line and by other use cases (not refused for a scope)
ORGANISATION_CREATE: Final = "organisation.create"


def action_of(use_case: str) -> tuple[str, str, str | None]:
    """(action, resource type, argument naming the resource) of a use case."""
    return ACTIONS.get(use_case, (use_case, "unknown", None))


def denied_action(use_case: str | None, ids: dict[str, str]) -> tuple[str, str, str | None]:
    """(action, resource type, resource id) of a refused call of `use_case`."""
    action, resource_type, argument = action_of(use_case or "unknown")
    return action, resource_type, None if argument is None else ids.get(argument)
