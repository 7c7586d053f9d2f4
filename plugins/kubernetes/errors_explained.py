"""Errors written for the person on call: `explain` turns an API error into one line naming
the verb, the object, the namespace, the identity and what to try (`kubectl auth can-i`, a
missing namespace, the names that do exist, the argument that resolves a conflict)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    K8sError,
    NotFound,
    did_you_mean,
)

if TYPE_CHECKING:  # annotations only: common imports explain
    from opsbook_plugins.kubernetes.common import Session


_LIST_CAP = 15  # names shown in "did you mean" listings


# --------------------------------------------------------------------------- errors


def explain(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None = None) -> K8sError:
    """An API error as the person on call needs it: who may not do what, what exists."""
    err = _explain(s, exc, verb, ref, sub)
    err.status = exc.status
    return err


def _explain(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None) -> K8sError:
    if isinstance(exc, Forbidden):
        return K8sError(_forbidden(s, exc, verb, ref, sub))
    if isinstance(exc, NotFound) and ref.name:
        return K8sError(not_found(s, ref))
    if isinstance(exc, NotFound) and ref.namespace:
        missing = _namespace_missing(s, ref)
        if missing:
            return K8sError(missing)
    if isinstance(exc, Conflict) and _SSA_CONFLICT.search(exc.api_message):
        return K8sError(
            f"{ref}: {exc.api_message}; another field manager owns these fields "
            "(set force_conflicts: true on k8s.apply to take them over)"
        )
    if isinstance(exc, Invalid):
        return K8sError(f"{ref} was rejected by the API: {exc.api_message}")
    if exc.status == 415 and verb == "patch":
        return K8sError(
            f"{ref}: {exc.api_message}; custom resources do not support strategic "
            "merge patches: use type: merge"
        )
    if exc.status >= 500:  # the server itself is in trouble (restarting, overloaded): say which
        return K8sError(
            f"{verb} {ref}: the API server at {s.cluster.server} answered HTTP {exc.status} "
            f"{exc.reason}: {exc.api_message}"
        )
    return K8sError(f"{verb} {ref}: HTTP {exc.status} {exc.reason}: {exc.api_message}")


# Server-side apply reports "Apply failed with N conflict(s): conflict with "manager" ...";
# an optimistic-lock 409 ("the object has been modified") is a different problem.
_SSA_CONFLICT = re.compile(r'Apply failed with \d+ conflicts?|conflicts? with "[^"]+"')

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<res>[^"]+)" in API group '
    r'"(?P<group>[^"]*)"(?: (?:in the namespace "(?P<ns>[^"]*)"|at the cluster scope))?'
)


def _forbidden(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None) -> str:
    found = _FORBIDDEN.search(exc.api_message)
    resource = ref.resource.qualified + (f"/{sub}" if sub else "")
    if found:
        user, verb = found["user"], found["verb"]
        base, _, subres = found["res"].partition("/")
        resource = (f"{base}.{found['group']}" if found["group"] else base) + (
            f"/{subres}" if subres else ""
        )
        where = f'in namespace "{found["ns"]}"' if found["ns"] else "at cluster scope"
    else:
        user = s.cluster.settings.as_user or "(this identity)"
        where = f'in namespace "{ref.namespace}"' if ref.namespace else "at cluster scope"
    ns_flag = f" -n {ref.namespace}" if ref.namespace else ""
    return (
        f'forbidden: user "{user}" may not {verb} {resource} {where} '
        f"({s.cluster.settings.describe()}). RBAC does not allow it: use an identity that may, "
        f"or ask for a Role granting {verb} on {resource}. "
        f"Check with: kubectl --context {s.cluster.context} auth can-i {verb} {resource}{ns_flag}"
    )


def not_found(s: Session, ref: Ref) -> str:
    """ "deployment shop/web9 not found; deployments in shop: api, web (did you mean "web"?)"."""
    missing_ns = _namespace_missing(s, ref)
    if missing_ns:
        return missing_ns
    plural = ref.resource.plural
    where = f" in {ref.namespace}" if ref.resource.namespaced else ""
    try:
        names = sorted(_names(s, Ref(ref.resource, ref.namespace)))
    except (ApiError, K8sError):
        return f"{ref} not found (cannot list {plural}{where} to suggest names)"
    if not names:
        return f"{ref} not found; there are no {plural}{where}"
    shown = ", ".join(names[:_LIST_CAP]) + (
        f", ... ({len(names)} in all)" if len(names) > _LIST_CAP else ""
    )
    return f"{ref} not found; {plural}{where}: {shown}{did_you_mean(ref.name or '', names)}"


def _names(s: Session, ref: Ref) -> list[str]:
    page = s.cluster.request("GET", ref.resource.path(ref.namespace), query={"limit": 500})
    return [i["metadata"]["name"] for i in page.get("items") or []]


def _namespace_missing(s: Session, ref: Ref) -> str | None:
    if not (ref.resource.namespaced and ref.namespace):
        return None
    try:
        s.cluster.request("GET", s.cluster.resource("namespaces").path(None, ref.namespace))
        return None
    except NotFound:
        pass
    except ApiError:
        return None
    try:
        names = sorted(_names(s, Ref(s.cluster.resource("namespaces"), None)))
        listing = (
            f"; namespaces: {', '.join(names[:_LIST_CAP])}{did_you_mean(ref.namespace, names)}"
        )
    except (ApiError, K8sError):
        listing = ""
    return f'namespace "{ref.namespace}" not found (looking for {ref}){listing}'
