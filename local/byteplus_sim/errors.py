"""The provider's error answers: the `{"error": {code, message, param, type}}` envelope,
the HTTP status each code comes with, and the refusals the simulator gives most."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

MESSAGES = {
    "AuthenticationError": "The API key or AK/SK in the request is missing or invalid.",
    "AccountOverdueError": "The request failed because your account has an overdue balance.",
    "AccessDenied": "The request failed because you do not have access to the resource.",
    "ModelNotOpen": "Your account has not activated the model service.",
    "QuotaExceeded": "The request has exceeded the quota.",
    "ServerOverloaded": "The service is overloaded. Please try again later.",
    "InternalServiceError": "The service encountered an unexpected internal error.",
    "ModelAccountRpmRateLimitExceeded": "The RPM limit of the model for your account has "
    "been exceeded. Please try again later.",
    "RateLimitExceeded.EndpointRPMExceeded": "The Requests Per Minute (RPM) limit of the "
    "associated endpoint for your account has been exceeded.",
    "InputTextSensitiveContentDetected": "The request failed because the input text may "
    "contain sensitive information.",
    "InputImageSensitiveContentDetected": "The request failed because the input image may "
    "contain sensitive information.",
    "InputImageSensitiveContentDetected.PrivacyInformation": "The request failed because the "
    "input image may contain real person.",
    "InputVideoSensitiveContentDetected": "The request failed because the input video may "
    "contain sensitive information.",
    "OutputVideoSensitiveContentDetected": "The request failed because the output video may "
    "contain sensitive information.",
    "OutputVideoSensitiveContentDetected.PolicyViolation": "The request failed because the "
    "output video may be related to copyright restrictions.",
    "OutputAudioSensitiveContentDetected.PolicyViolation": "The request failed because the "
    "output audio may be related to copyright restrictions.",
}

_STATUS_BY_CODE_PREFIX = (
    ("AuthenticationError", 401),
    ("AccountOverdueError", 403),
    ("AccessDenied", 403),
    ("ModelNotOpen", 404),
    ("InvalidEndpoint", 404),
    ("RateLimitExceeded", 429),
    ("ModelAccount", 429),
    ("APIAccount", 429),
    ("AccountRateLimitExceeded", 429),
    ("QuotaExceeded", 429),
    ("ServerOverloaded", 429),
    ("SetLimitExceeded", 429),
    ("InternalServiceError", 500),
)

CODE_BY_STATUS = {
    400: "InvalidParameter",
    401: "AuthenticationError",
    403: "AccessDenied",
    404: "InvalidEndpointOrModel.NotFound",
    429: "ServerOverloaded",
}


def status_for_code(code: str) -> int:
    for prefix, status in _STATUS_BY_CODE_PREFIX:
        if code.startswith(prefix):
            return status
    return 400


class ApiError(Exception):
    """A provider error answer: HTTP status and the `error` envelope."""

    def __init__(self, status: int, code: str, message: str = "", param: str = "") -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or MESSAGES.get(code, f"The request failed: {code}.")
        self.param = param

    def response(self, request_id: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": _TYPES.get(self.status, "InternalServerError"),
            }
        }
        return JSONResponse(
            body, self.status, headers={"X-Request-Id": request_id, **(headers or {})}
        )


def invalid(param: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        param,
    )


def missing(param: str) -> ApiError:
    return ApiError(
        400,
        "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        param,
    )


def not_found(task_id: str) -> ApiError:
    return ApiError(404, "ResourceNotFound", f"The specified task {task_id} is not found.", "id")
