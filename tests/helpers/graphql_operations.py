"""The GraphQL operations on one assistant that several test modules send, with all its fields,
and the conversion of the REST-spelt cases (tests.helpers.assistant_cases) into GraphQL input."""

from __future__ import annotations

from typing import Any

from strawberry.utils.str_converters import to_camel_case

ASSISTANT_FIELDS = """
id name enabled deleted version secretKey avatarId avatarUrl ref createdAt updatedAt
config {
  language model instructions knowledgeScope timezone
  stt { model } tts { model voiceId }
  conversation {
    threadMode enableMemories enableTransferToHumanTool welcomeBanner suggestedMessages
    autoIntroMessage enableEndConversationTool enableBlockContactTool enablePrivateChats
    enableAutoResolve enableAutoFollowUps enableAutoCsat enableUpdateContactTool
  }
}
integrations { id } actions { id }
"""

CREATE_ASSISTANT = f"""
mutation($org: ID!, $input: CreateAssistantInput!) {{
  createAssistant(orgId: $org, input: $input) {{ {ASSISTANT_FIELDS} }}
}}
"""
READ_ASSISTANT = f"""
query($org: ID!, $id: ID!) {{ assistant(orgId: $org, id: $id) {{ {ASSISTANT_FIELDS} }} }}
"""

UPDATE_ASSISTANT = f"""
mutation($org: ID!, $id: ID!, $input: UpdateAssistantInput!, $expected: Int) {{
  updateAssistant(orgId: $org, assistantId: $id, input: $input, expectedVersion: $expected) {{
    {ASSISTANT_FIELDS}
  }}
}}
"""

# Keys whose values are enums: lower case in REST, upper case in GraphQL.
ENUM_KEYS = {"thread_mode", "knowledge_scope"}


def to_input(value: Any, key: str = "") -> Any:
    """A snake_case REST body as the camelCase GraphQL input (enum values in upper case)."""
    if isinstance(value, dict):
        return {to_camel_case(k): to_input(v, k) for k, v in value.items()}
    if key in ENUM_KEYS and isinstance(value, str):
        return value.upper()
    return value


def gql_path(dotted: str) -> list[str | int]:
    """A REST error path (`config.conversation.suggested_messages.1`) as GraphQL names it."""
    return [int(p) if p.isdigit() else to_camel_case(p) for p in dotted.split(".")]
