"""Resource-policy evaluation for the local AWS: IAM's rules, for the policies the stack writes.

Pure: a policy document (the JSON as stored), who calls, the action, the resource and the
request's condition keys in; a `Decision` out. `evaluate` answers for one document as IAM's policy
evaluation logic does ("Policy evaluation logic", IAM User Guide): an explicit Deny in any
statement wins, else an Allow, else nothing (`NO_MATCH`). `allows` adds what the local AWS has in
place of identity policies: there are none, so a principal of the resource's own account may do
what no statement denies (as an account administrator would), while a principal of another account,
or an AWS service, needs an Allow in the resource policy.

Condition operators: the String*, Arn*, Bool and Null families, each with `...IfExists`, and the
`ForAnyValue:`/`ForAllValues:` set qualifiers. A key the request does not carry makes a positive
operator false and a negated one (`StringNotEquals`, `ArnNotLike`, ...) true, which is why a Deny
on `ArnNotLike aws:PrincipalArn` also denies AWS services (they have no principal ARN). An
operator this module does not know raises `PolicyError`: guessing would make a Deny silently void.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ContextValue = str | list[str] | tuple[str, ...]


class PolicyError(ValueError):
    """The policy document is not one this evaluator can decide (bad shape, unknown operator)."""


class Decision(enum.Enum):
    """The verdict of one policy document."""

    ALLOW = "Allow"
    DENY = "Deny"  # an explicit Deny: nothing can override it
    NO_MATCH = "NoMatch"  # no statement applies: the implicit deny, unless another policy allows


@dataclass(frozen=True)
class Principal:
    """Who makes a request: an IAM identity of an account, or an AWS service acting for a resource.

    `arn` is what IAM puts in `aws:PrincipalArn`: the role's ARN for a role session, the user's,
    or `arn:aws:iam::<account>:root`. `session_arn` is an assumed role's session ARN (what
    `GetCallerIdentity` says). `service` is set for a service principal (`events.amazonaws.com`),
    which has no account and no principal ARN. `user_id` is IAM's unique id (`AIDA...` for a user,
    `AROA...:<session>` for a role session, the account id for the root): what SQS reports as a
    message's `SenderId`.
    """

    arn: str = ""
    account: str = ""
    service: str = ""
    user_id: str = ""
    session_arn: str = ""

    @property
    def is_service(self) -> bool:
        return bool(self.service)

    @classmethod
    def of_service(cls, service: str, user_id: str = "") -> Principal:
        return cls(service=service, user_id=user_id)

    def context(self) -> dict[str, ContextValue]:
        """The global condition keys IAM derives from the caller."""
        if self.is_service:
            return {"aws:PrincipalServiceName": self.service, "aws:PrincipalIsAWSService": "true"}
        keys: dict[str, ContextValue] = {"aws:PrincipalIsAWSService": "false"}
        if self.arn:
            keys["aws:PrincipalArn"] = self.arn
        if self.account:
            keys["aws:PrincipalAccount"] = self.account
        if self.user_id:
            keys["aws:userid"] = self.user_id
        return keys


def evaluate(
    policy_document: Mapping[str, Any] | str | None,
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, ContextValue] | None = None,
) -> Decision:
    """One resource policy's verdict on `principal` doing `action` (`sqs:SendMessage`) on
    `resource` (an ARN), with the request's condition keys in `context` (the principal's own keys
    are added). Raises PolicyError for a document it cannot read."""
    document = _document(policy_document)
    keys: dict[str, ContextValue] = {**principal.context(), **(context or {})}
    allowed = False
    for statement in _statements(document):
        if not _applies(statement, principal, action, resource, keys):
            continue
        effect = statement.get("Effect")
        if effect == "Deny":
            return Decision.DENY
        if effect == "Allow":
            allowed = True
        else:
            raise PolicyError(f"statement {statement.get('Sid', '')!r} has Effect {effect!r}")
    return Decision.ALLOW if allowed else Decision.NO_MATCH


def allows(
    policy_document: Mapping[str, Any] | str | None,
    principal: Principal,
    action: str,
    resource: str,
    resource_account: str,
    context: Mapping[str, ContextValue] | None = None,
) -> bool:
    """Whether the request goes through on the local AWS (see the module docstring): never after an
    explicit Deny; after an Allow; with neither, only for a principal of `resource_account`."""
    decision = evaluate(policy_document, principal, action, resource, context)
    if decision is Decision.DENY:
        return False
    if decision is Decision.ALLOW:
        return True
    return not principal.is_service and principal.account == resource_account


# ------------------------------------------------------------------------------------- statements
def _document(policy_document: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if policy_document is None or policy_document == "":
        return {}
    if isinstance(policy_document, str):
        import json

        try:
            policy_document = json.loads(policy_document)
        except ValueError as exc:
            raise PolicyError(f"the policy is not JSON: {exc}") from exc
    if not isinstance(policy_document, Mapping):
        raise PolicyError("a policy document must be a JSON object")
    return policy_document


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, Mapping) for s in statements):
        raise PolicyError("Statement must be an object or a list of objects")
    return statements


def _applies(
    statement: Mapping[str, Any],
    principal: Principal,
    action: str,
    resource: str,
    keys: Mapping[str, ContextValue],
) -> bool:
    if "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], principal):
            return False
    elif not _principal_matches(statement.get("Principal"), principal):
        return False
    if "NotAction" in statement:
        if any(_like(a, action, fold=True) for a in _strings(statement["NotAction"])):
            return False
    elif not any(_like(a, action, fold=True) for a in _strings(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(_like(r, resource) for r in _strings(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(_like(r, resource) for r in _strings(statement["Resource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), keys)


def _principal_matches(element: Any, principal: Principal) -> bool:
    """IAM's Principal element: `*` (or `{"AWS": "*"}`) is everyone, services included; an account
    id or `arn:...:iam::<account>:root` is every identity of that account; a role or user ARN is
    that identity (a role's sessions included); `{"Service": ...}` a service principal."""
    if element is None:
        return False  # a resource policy statement without a principal applies to no one
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        raise PolicyError(f"Principal must be '*' or an object, got {element!r}")
    for kind, values in element.items():
        for value in _strings(values):
            if value == "*":
                return True
            if kind == "Service":
                if principal.service == value:
                    return True
            elif kind == "AWS" and not principal.is_service and _aws_principal_matches(value, principal):
                return True
    return False


ROOT_ARN_RE = re.compile(r"arn:[^:]+:iam::(?P<account>\d{12}):root")


def _aws_principal_matches(value: str, principal: Principal) -> bool:
    if value.isdigit():
        return value == principal.account
    root = ROOT_ARN_RE.fullmatch(value)
    if root:
        return root["account"] == principal.account
    return value in (principal.arn, principal.session_arn)


# ------------------------------------------------------------------------------------- conditions
_STRING_OPERATORS = {
    "StringEquals": (False, False, False),  # (negated, wildcards, case-insensitive)
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    # ARNs: ArnEquals and ArnLike are the same operator in IAM (both take wildcards).
    "ArnEquals": (False, True, False),
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
    "Bool": (False, False, True),
}


def _conditions_hold(conditions: Any, keys: Mapping[str, ContextValue]) -> bool:
    """Every operator block, and every key in it, must hold (AND); a key's values are ORed."""
    if not isinstance(conditions, Mapping):
        raise PolicyError("Condition must be an object")
    for operator, block in conditions.items():
        if not isinstance(block, Mapping):
            raise PolicyError(f"condition {operator} must map keys to values")
        for key, wanted in block.items():
            if not _condition_holds(operator, key, _strings(wanted), keys):
                return False
    return True


def _condition_holds(operator: str, key: str, wanted: list[str], keys: Mapping[str, ContextValue]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    base = name[: -len("IfExists")] if if_exists else name
    present = _context_value(keys, key)
    if base == "Null":
        if qualifier or if_exists:
            raise PolicyError(f"unsupported condition operator {operator}")
        return (present is None) == (wanted[0].lower() == "true")
    spec = _STRING_OPERATORS.get(base)
    if spec is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"unsupported condition operator {operator}")
    negated, wildcards, fold = spec
    if present is None:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or negated

    def matches(value: str) -> bool:
        hit = any(_like(w, value, fold=fold) if wildcards else _equal(w, value, fold) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(matches(v) for v in present)
    if negated and not qualifier:
        return all(matches(v) for v in present)  # a single-valued negation: no value may match
    return any(matches(v) for v in present)


def _context_value(keys: Mapping[str, ContextValue], key: str) -> list[str] | None:
    """Condition keys are case-insensitive; a key with no values counts as absent."""
    for name, value in keys.items():
        if name.lower() == key.lower():
            values = [value] if isinstance(value, str) else list(value)
            return values or None
    return None


def _equal(wanted: str, value: str, fold: bool) -> bool:
    return wanted.lower() == value.lower() if fold else wanted == value


def _like(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one character; everything else literal.
    Actions compare case-insensitively (`fold`), resources and condition values exactly."""
    return _wildcard_regex(pattern, fold).fullmatch(value) is not None


@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, fold: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if fold else re.DOTALL)


def _strings(values: Any) -> list[str]:
    if isinstance(values, str):
        return [values]
    if isinstance(values, Iterable) and not isinstance(values, Mapping):
        items = list(values)
        if all(isinstance(v, str) for v in items):
            return items
    if isinstance(values, bool):
        return [str(values).lower()]
    raise PolicyError(f"expected a string or a list of strings, got {values!r}")
