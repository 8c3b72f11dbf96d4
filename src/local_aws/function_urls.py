"""Lambda function URLs with `AuthType: AWS_IAM`, served on the local AWS's own port (issue 20).

On AWS a function URL is a host of its own (`https://<id>.lambda-url.<region>.on.aws/`); here it
is a path prefix of the front port (`http://127.0.0.1:<port>/approvals/`), registered in-process
with `FunctionUrls.add`. Before the function runs, what Lambda does for an `AWS_IAM` URL:

1. the request must carry a SigV4 signature for the service `lambda` (botocore's `SigV4Auth`,
   `awscurl --service lambda`); none, a key the local AWS does not know, or a signature that does
   not match: HTTP 403, and the function never runs. The signature is checked by moto's own
   verifier (`moto.iam.access_control.IAMRequest.check_signature`), fed the secret the local AWS
   knows for the key: `local_aws.principals.LOCAL_SECRET` for a principal's key
   (`promoter local credentials --principal ARN`), the session's secret for a key of moto's
   `AssumeRole` (and its session token), a user's for a key of moto's `CreateAccessKey`. The
   legacy keys every local caller may use (`test`, a 12-digit account id) have no secret anybody
   could check, so a function URL refuses them, as AWS refuses a key it does not know;
2. the function's resource policy must let the caller do `lambda:InvokeFunctionUrl` (condition key
   `lambda:FunctionUrlAuthType` = `AWS_IAM`) and `lambda:InvokeFunction` (`lambda:InvokedViaFunctionUrl`
   = `true`; both are needed since October 2025), decided by `local_aws.policy` as every resource
   policy on the local AWS is (no identity policies exist locally: a principal of the function's
   own account is allowed unless a statement denies it). Refused: HTTP 403 `{"Message": "Forbidden"}`;
3. the function gets the payload format 2.0 event, whose
   `requestContext.authorizer.iam.userArn` is the caller AWS authenticated: a user's ARN, or for a
   role the session's `arn:aws:sts::<account>:assumed-role/<role>/<session>` (moto's `AssumeRole`
   keeps its `RoleSessionName`; a principal's key for a role is the session `local`).
   Its answer (`statusCode`, `headers`, `body`, or any JSON value for a 200) is the HTTP response;
   a function error is a 502, as Lambda answers it.

Lambda's and IAM's documents: "Control access to Lambda function URLs", "Invoking Lambda function
URLs" (the request and response payloads).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from local_aws import policy
from local_aws.accounts import access_key_of, account_of
from local_aws.policy import Principal
from local_aws.principals import LOCAL_KEY_PREFIX, LOCAL_SECRET, parse_principal, principal_of_key

LOG = logging.getLogger(__name__)
StartResponse = Any
Handler = Callable[[dict[str, Any], Any], Any]

SIGNING_SERVICE = "lambda"
AUTH_TYPE = "AWS_IAM"
INVOKE_URL_ACTION = "lambda:InvokeFunctionUrl"
INVOKE_ACTION = "lambda:InvokeFunction"
# Lambda refuses a signature older (or further ahead) than this, as every SigV4 service does.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
MAX_BODY_BYTES = 6 * 1024 * 1024  # a function URL's request payload quota
FORBIDDEN = {"Message": "Forbidden"}


@dataclass(frozen=True)
class FunctionUrl:
    """One function behind a URL: `path` the local stand-in for the URL's host (it ends with `/`),
    `handler` the Lambda entry point, `resource_policy` the function's policy document (JSON text
    or a mapping), `function_arn` the resource the policy names."""

    path: str
    function_arn: str
    handler: Handler
    resource_policy: Mapping[str, Any] | str
    function_name: str = "function"


@dataclass(frozen=True)
class Caller:
    """Who signed a request, as Lambda hands it to the function (`requestContext.authorizer.iam`)."""

    principal: Principal
    access_key: str
    user_arn: str


class AuthenticationError(Exception):
    """The request is not signed by a caller the local AWS knows (the message says why)."""


class FunctionUrls:
    """The function URLs of one local AWS: `add` registers one, `find` the one a path is for, and
    calling it with that one serves a request (the front server routes, see local_aws.server)."""

    def __init__(self, default_account: str, region: str) -> None:
        self.default_account = default_account
        self.region = region
        self._urls: dict[str, FunctionUrl] = {}
        self._lock = threading.Lock()

    def add(self, url: FunctionUrl) -> None:
        """Serves `url` (a registration under the same path replaces the old one)."""
        if (
            not url.path.startswith("/")
            or not url.path.endswith("/")
            or url.path.startswith(("/v2/", "/_local/"))
        ):
            raise ValueError(
                f"a function URL path starts and ends with '/' and is no other route's: {url.path!r}"
            )
        with self._lock:
            self._urls[url.path] = url

    def remove(self, path: str) -> None:
        with self._lock:
            self._urls.pop(path, None)

    def find(self, path: str) -> FunctionUrl | None:
        """The function whose URL serves `path` (its prefix, or the prefix without its slash)."""
        with self._lock:
            for prefix, url in self._urls.items():
                if path.startswith(prefix) or path == prefix.rstrip("/"):
                    return url
        return None

    def __call__(
        self, url: FunctionUrl, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _reply(start_response, 413, {"Message": "Request must be smaller than 6291456 bytes"})
        body = environ["wsgi.input"].read(length) if length else b""
        headers = _headers(environ)
        try:
            caller = authenticate(environ, headers, body, self.default_account)
        except AuthenticationError as exc:
            LOG.info("function URL %s refused an unauthenticated call: %s", url.path, exc)
            return _reply(start_response, 403, {"Message": str(exc)})
        why = invoke_refusal(url, caller.principal)
        if why is not None:
            LOG.info("function URL %s refused %s: %s", url.path, caller.user_arn, why)
            return _reply(start_response, 403, FORBIDDEN)
        event = url_event(url, environ, headers, body, caller, self.region)
        from local_aws.event_source_mapping import LocalLambdaContext

        context = LocalLambdaContext(function_name=url.function_name)
        try:
            answer = url.handler(event, context)
        except Exception:  # Lambda answers a function error with 502 and logs it
            LOG.exception("function %s failed on %s", url.function_name, url.path)
            return _reply(start_response, 502, {"Message": "Internal Server Error"})
        return _answer(start_response, answer)


def authenticate(
    environ: Mapping[str, Any], headers: dict[str, str], body: bytes, default_account: str
) -> Caller:
    """The caller whose SigV4 signature (service `lambda`) the request carries. Raises
    AuthenticationError when it is unsigned, signed for another service, too old, signed with a
    key the local AWS does not know, or with the wrong secret."""
    authorization = headers.get("Authorization", "")
    key = access_key_of(authorization)
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or key is None:
        raise AuthenticationError("Forbidden")  # Lambda's answer to an unsigned call
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    if len(scope) != 5 or scope[3] != SIGNING_SERVICE:
        raise AuthenticationError(f"Credential should be scoped to correct service: '{SIGNING_SERVICE}'.")
    signed_at = headers.get("X-Amz-Date", "")
    try:
        when = datetime.datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AuthenticationError("the request has no valid X-Amz-Date header") from None
    if abs(time.time() - when.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
        raise AuthenticationError(f"Signature expired: {signed_at} is more than 15 minutes from now")
    claimed = headers.get("X-Amz-Content-Sha256")
    if claimed is not None and claimed != "UNSIGNED-PAYLOAD" and claimed != hashlib.sha256(body).hexdigest():
        raise AuthenticationError(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    request = _SignedRequest(
        account_of(key, default_account),
        str(environ.get("REQUEST_METHOD", "GET")),
        f"{path}?{query}" if query else path,
        body,
        headers,
    )
    request.check_signature()
    return request.caller()


def invoke_refusal(url: FunctionUrl, principal: Principal) -> str | None:
    """Why the function's resource policy refuses `principal` the URL, or None: both actions an
    `AWS_IAM` function URL needs must be allowed (see the module docstring)."""
    account = url.function_arn.split(":")[4]
    for action, keys in (
        (INVOKE_URL_ACTION, {"lambda:FunctionUrlAuthType": AUTH_TYPE}),
        (INVOKE_ACTION, {"lambda:InvokedViaFunctionUrl": "true"}),
    ):
        if not policy.allows(url.resource_policy, principal, action, url.function_arn, account, keys):
            return f"the resource policy of {url.function_arn} does not allow {action}"
    return None


def url_event(
    url: FunctionUrl,
    environ: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    caller: Caller,
    region: str,
) -> dict[str, Any]:
    """The payload format 2.0 request event Lambda hands a function behind a URL."""
    path = str(environ.get("PATH_INFO", "/"))
    raw_path = "/" + path[len(url.path) :] if path.startswith(url.path) else "/"
    now = time.time()
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    principal = caller.principal
    url_id = hashlib.sha256(url.function_arn.encode()).hexdigest()[:32]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": str(environ.get("QUERY_STRING", "")),
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": url.function_arn.split(":")[4],
            "apiId": url_id,
            "authorizer": {
                "iam": {
                    "accessKey": caller.access_key,
                    "accountId": principal.account,
                    "callerId": principal.user_id,
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": caller.user_arn,
                    "userId": principal.user_id,
                }
            },
            "domainName": f"{url_id}.lambda-url.{region}.on.aws",
            "domainPrefix": url_id,
            "http": {
                "method": str(environ.get("REQUEST_METHOD", "GET")),
                "path": raw_path,
                "protocol": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
                "sourceIp": str(environ.get("REMOTE_ADDR", "127.0.0.1")),
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if body:
        event["body"] = text
    return event


class _SignedRequest:
    """moto's SigV4 verifier (`IAMRequest`), with the local principals' keys known to it too."""

    def __init__(self, account: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        from moto.core.exceptions import InvalidClientTokenIdError, SignatureDoesNotMatchError

        self._errors = (InvalidClientTokenIdError, SignatureDoesNotMatchError)
        self.key = access_key_of(headers["Authorization"]) or ""
        self._local = principal_of_key(self.key) if self.key.startswith(LOCAL_KEY_PREFIX) else None
        try:
            self._request = _verifier()(account, method, path, {}, body, headers, SIGNING_SERVICE)
        except self._errors as exc:
            raise AuthenticationError(_moto_message(exc)) from None
        except KeyError:  # an assumed role's key without its session token
            raise AuthenticationError("The security token included in the request is invalid.") from None

    def check_signature(self) -> None:
        try:
            self._request.check_signature()
        except self._errors as exc:
            raise AuthenticationError(_moto_message(exc)) from None

    def caller(self) -> Caller:
        """The principal the verified key stands for, and the ARN Lambda reports for it."""
        if self._local is not None:
            return Caller(self._local, self.key, self._local.session_arn or self._local.arn)
        arn = str(self._request._access_key.arn)  # moto's: the user, or the role's session
        if ":assumed-role/" in arn:
            role = principal_of_key(self.key)  # the role (with its path), from moto's STS
            if role is None:
                raise AuthenticationError("The security token included in the request is invalid.")
            session = arn.rsplit("/", 1)[1]
            principal = replace(role, session_arn=arn, user_id=f"{role.user_id.split(':')[0]}:{session}")
            return Caller(principal, self.key, arn)
        try:
            return Caller(parse_principal(arn), self.key, arn)
        except ValueError:
            raise AuthenticationError(f"{arn} is no principal a function URL serves") from None


@cache
def _verifier() -> type:
    """moto's `IAMRequest` (its SigV4 check), taught the local principals' keys, which moto's IAM
    does not hold: their secret is LOCAL_SECRET. Any other key moto does not know stays refused."""
    from moto.iam.access_control import IAMRequest

    class LocalIAMRequest(IAMRequest):
        def _raise_invalid_access_key(self, reason: str) -> None:
            key = access_key_of(self._headers["Authorization"]) or ""
            if not key.startswith(LOCAL_KEY_PREFIX) or principal_of_key(key) is None:
                super()._raise_invalid_access_key(reason)
            self._access_key = _LocalKey(key)

    return LocalIAMRequest


class _LocalKey:
    """A principal's key (`local_aws.principals.credentials_for`): its secret is LOCAL_SECRET."""

    def __init__(self, key: str) -> None:
        self.key = key

    def create_credentials(self) -> Any:
        from botocore.credentials import Credentials

        return Credentials(self.key, LOCAL_SECRET)


def _moto_message(exc: Exception) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return str(message).strip() or type(exc).__name__


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    from werkzeug.datastructures import EnvironHeaders

    return dict(EnvironHeaders(environ).items())


def _answer(start_response: StartResponse, answer: Any) -> list[bytes]:
    """The function's answer as HTTP: a `statusCode` response object, else any JSON value (200)."""
    if isinstance(answer, Mapping) and "statusCode" in answer:
        status = int(answer["statusCode"])
        headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
        body = answer.get("body")
        if body is None:
            data = b""
        elif answer.get("isBase64Encoded"):
            data = base64.b64decode(str(body))
        else:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
        return _raw_reply(start_response, status, headers, data)
    return _reply(start_response, 200, answer)


def _reply(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    return _raw_reply(start_response, status, {"Content-Type": "application/json"}, json.dumps(body).encode())


def _raw_reply(
    start_response: StartResponse, status: int, headers: dict[str, str], data: bytes
) -> list[bytes]:
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    start_response(
        f"{status} {reason}",
        [*headers.items(), ("Content-Length", str(len(data))), ("x-amzn-RequestId", str(uuid.uuid4()))],
    )
    return [data]
