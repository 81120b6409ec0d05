"""A local stand-in for the PowerOffice Go v2 API (customers, contact persons, departments,
suppliers), written from the published OpenAPI document, independently of the real adapter.

Wire DTOs are PascalCase; request property names and query parameters are matched
case-insensitively (as ASP.NET model binding does); errors are RFC 7807 ProblemDetails, except
what the API gateway answers itself (a missing subscription key, throttling). Statuses are
only those the document lists for an operation; lists honour exactly the filters it declares
(``poweroffice_query``). Where the document is silent, ``docs/poweroffice.md`` says which
reading was chosen.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import attrs

from adapters.sandbox.base import SandboxApp
from adapters.sandbox.faults import Controller
from adapters.sandbox.poweroffice_query import Entry, list_predicates
from adapters.sandbox.poweroffice_query import Invalid as _Invalid
from adapters.sandbox.wsgi import Match, Request, Response, Router, reason_phrase

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_EMAIL = re.compile(r"^[^@\s;,<>]+@[^@\s;,<>]+\.[^@\s;,<>.]+$")

# Property names per DTO, from the OpenAPI document's component schemas.
CUSTOMER_POST_FIELDS = _names(
    "Allowance BillableRate ContactGroupIds CurrencyCode CustomerSince DateOfBirth DeliveryTerm "
    "DeliveryTermId DepartmentCode DepartmentId DoNotAddLatePaymentFees "
    "DoNotAddLatePaymentInterest "
    "DoNotAutomatePaymentNotifications EmailAddress ExternalImportReference ExternalNumber "
    "FirstName InvoiceBrandingThemeCode InvoiceBrandingThemeId InvoiceDeliveryType "
    "InvoiceEmailAddress InvoiceEmailAddressCC IsArchived IsPerson IsVatFree LastName LegalName "
    "MailAddress Name NationalIdNumber NoticeOfDebtCollectionDeliveryType Number "
    "OrganizationNumber PaymentReminderEmailAddress PaymentTerm PaymentTermId PhoneNumber "
    "ReminderDeliveryType SalesPersonEmployeeId SalesPersonEmployeeNumber SendPaymentReminders "
    "SubLedgerNumberSeriesId TransferToDebtCollectionAgency UseInvoiceFee WebsiteUrl"
)
CUSTOMER_DTO_FIELDS = frozenset(
    _names(
        "Allowance BillableRate ContactCreatedDateTimeOffset ContactGroupIds "
        "CreatedFromImportJournalId CurrencyCode CustomerCreatedDateTimeOffset CustomerSince "
        "DateOfBirth DeliveryTerm DeliveryTermId DepartmentCode DepartmentId "
        "DoNotAddLatePaymentFees DoNotAddLatePaymentInterest DoNotAutomatePaymentNotifications "
        "EmailAddress ExternalImportReference ExternalNumber FirstName Id InvoiceBrandingThemeCode "
        "InvoiceBrandingThemeId InvoiceDeliveryType InvoiceEmailAddress InvoiceEmailAddressCC "
        "IsActive IsArchived IsPerson IsVatFree LastChangedDateTimeOffset LastName LegalName "
        "MailAddress Name NationalIdNumber NoticeOfDebtCollectionDeliveryType Number "
        "OrganizationNumber PaymentReminderEmailAddress PaymentTerm PaymentTermId PhoneNumber "
        "ReminderDeliveryType SalesPersonEmployeeId SalesPersonEmployeeNumber SendPaymentReminders "
        "SubledgerAccountId TransferToDebtCollectionAgency UseInvoiceFee WebsiteUrl"
    )
)
CONTACT_PERSON_POST_FIELDS = _names(
    "EmailAddress ExternalCode FirstName IsActive IsDefault LastName MailAddress PhoneNumber Title"
)
CONTACT_PERSON_DTO_FIELDS = frozenset(
    [
        *CONTACT_PERSON_POST_FIELDS,
        "ContactId",
        "CreatedDateTimeOffset",
        "Id",
        "LastChangedDateTimeOffset",
    ]
)
DEPARTMENT_POST_FIELDS = _names("Code IsActive ManagerEmployeeId ManagerEmployeeNo Name")
# PATCH /Departments/{id} points at a DepartmentPatchDto the document never defines. Read as
# DepartmentDto's writable (not readOnly) properties; the document's own 400 example refuses
# the path segment 'manageremployeeno', which agrees (the manager is set on create only).
DEPARTMENT_PATCH_FIELDS = _names("Code IsActive Name")
DEPARTMENT_DTO_FIELDS = frozenset(
    [
        *DEPARTMENT_POST_FIELDS,
        "CreatedDateTimeOffset",
        "CreatedFromImportJournalId",
        "Id",
        "LastChangedDateTimeOffset",
    ]
)
SUPPLIER_DTO_FIELDS = frozenset(
    _names(
        "ContactCreatedDateTimeOffset ContactGroupIds CreatedFromImportJournalId CurrencyCode "
        "DateOfBirth EmailAddress ExternalImportReference ExternalNumber FirstName Id IsActive "
        "IsArchived IsPerson LastChangedDateTimeOffset LastName LegalName MailAddress Name Number "
        "OrganizationNumber Payout PhoneNumber SubledgerAccountId SupplierCreatedDateTimeOffset "
        "WebsiteUrl"
    )
)

_STRING_FIELDS = frozenset(
    [
        "Name",
        "FirstName",
        "LastName",
        "EmailAddress",
        "Code",
        "Title",
        "PhoneNumber",
        "ExternalCode",
        "OrganizationNumber",
        "LegalName",
        "InvoiceEmailAddress",
        "PaymentReminderEmailAddress",
        "WebsiteUrl",
        "CurrencyCode",
    ]
)
_BOOL_FIELDS = frozenset(_names("IsPerson IsActive IsArchived IsDefault IsVatFree"))
_INT_FIELDS = frozenset(_names("Number ExternalNumber DepartmentId ManagerEmployeeId"))
_EMAIL_FIELDS = frozenset(_names("EmailAddress InvoiceEmailAddress PaymentReminderEmailAddress"))

MAX_PAGE_SIZE = 20000
DEFAULT_PAGE_SIZE = 5000
MAX_URL_LENGTH = 2000
"""Public clients report that URLs over about 2,000 characters are answered 404."""


@attrs.frozen
class PowerOfficeCredentials:
    """The three keys a PowerOffice Go integration holds (values hidden from reprs)."""

    application_key: str = attrs.field(repr=False)
    client_key: str = attrs.field(repr=False)
    subscription_key: str = attrs.field(repr=False)

    @classmethod
    def generate(cls) -> PowerOfficeCredentials:
        """Fresh random keys."""
        return cls(
            application_key=secrets.token_hex(16),
            client_key=secrets.token_hex(16),
            subscription_key=secrets.token_hex(16),
        )


@attrs.define
class _Table:
    """Rows of one resource (wire fields) with their change stamps in epoch microseconds."""

    label: str
    dto_fields: frozenset[str]
    patch_dto: str
    """The name of the DTO a JSON Patch is applied to, for error messages."""
    rows: dict[int, dict[str, Any]] = attrs.Factory(dict)
    changed: dict[int, int] = attrs.Factory(dict)
    created: dict[int, int] = attrs.Factory(dict)


class PowerOfficeSandbox(SandboxApp):
    """In-memory PowerOffice Go v2: OAuth token endpoint plus `/v2/...` resources.

    `app` is the WSGI application. Seed data with the `add_*` methods; read it back with
    `dump()`. Tokens expire after `token_lifetime` seconds of `clock` time; `rate_limit`
    (requests per second per subscription key) is off when None, and a throttled call is told
    to wait `rate_limit_retry_after` seconds. URLs longer than `max_url_length` are answered
    404; list pages carry `X-Pagination` unless `pagination_header` is False.
    """

    name = "poweroffice"

    def __init__(
        self,
        *,
        credentials: PowerOfficeCredentials | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 1200,
        rate_limit: int | None = None,
        rate_limit_retry_after: int = 1,
        controller: Controller | None = None,
        max_url_length: int | None = MAX_URL_LENGTH,
        pagination_header: bool = True,
    ) -> None:
        super().__init__(controller)
        self.credentials = credentials or PowerOfficeCredentials.generate()
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.rate_limit = rate_limit
        self.rate_limit_retry_after = rate_limit_retry_after
        #: URLs longer than this are answered 404 like the real gateway (None: no limit).
        self.max_url_length = max_url_length
        #: The length of every URL refused for being too long, in order.
        self.refused_urls: list[int] = []
        #: Whether list pages carry ``X-Pagination: {"nextPageLink": …}`` (see docs/poweroffice.md).
        self.pagination_header = pagination_header
        #: Resource names (e.g. "Departments") the integration has no access role for: 403.
        self.forbidden: set[str] = set()
        self._tokens: dict[str, float] = {}
        self._calls: dict[str, deque[float]] = {}
        self._last_stamp = 0
        self._next_contact_id = 1_000_001
        self._next_person_id = 5_000_001
        self._next_department_id = 3_001
        self._next_customer_no = 10_000
        self._customer_numbers: dict[int, int] = {}  # Number -> customer Id
        self._next_supplier_no = 50_000
        self.customers = _Table("Customer", CUSTOMER_DTO_FIELDS, "CustomerPatchDto")
        self.contact_persons = _Table(
            "Contact person", CONTACT_PERSON_DTO_FIELDS, "ContactPersonPatchDto"
        )
        self.departments = _Table("Department", DEPARTMENT_DTO_FIELDS, "DepartmentPatchDto")
        self.suppliers = _Table("Supplier", SUPPLIER_DTO_FIELDS, "SupplierPatchDto")
        self.router = Router(ignore_case=True)
        self._routes()

    # -- seeding and inspection (Python side) -----------------------------------------------------

    def add_customer(self, **wire_fields: Any) -> dict[str, Any]:
        """Store a customer from PascalCase wire fields (Id/IsActive/stamps may be given)."""
        with self._lock:
            return self._add_customer(wire_fields, validate=False)

    def add_contact_person(self, contact_id: int, **wire_fields: Any) -> dict[str, Any]:
        """Store a contact person under a customer or supplier id."""
        with self._lock:
            return self._add_contact_person(int(contact_id), wire_fields, validate=False)

    def add_department(self, **wire_fields: Any) -> dict[str, Any]:
        """Store a department."""
        with self._lock:
            return self._add_department(wire_fields, validate=False)

    def add_supplier(self, **wire_fields: Any) -> dict[str, Any]:
        """Store a supplier (its Id is a contact id, like a customer's)."""
        with self._lock:
            fields = dict(wire_fields)
            supplier_id = int(fields.pop("Id", None) or self._new_contact_id())
            stamp = self._stamp()
            row = {
                "Id": supplier_id,
                "Number": fields.pop("Number", None) or self._new_supplier_no(),
                "Name": None,
                "IsPerson": False,
                "FirstName": None,
                "LastName": None,
                "EmailAddress": None,
                "IsActive": True,
                "IsArchived": False,
                **fields,
            }
            self._put(self.suppliers, supplier_id, row, stamp)
            return self._dto(self.suppliers, supplier_id)

    def dump(self) -> dict[str, Any]:
        """Every record as the API would show it, by resource."""
        with self._lock:
            return {
                "customers": self._all(self.customers),
                "contact_persons": self._all(self.contact_persons),
                "departments": self._all(self.departments),
                "suppliers": self._all(self.suppliers),
            }

    def issue_token(self) -> str:
        """A valid access token, for in-process tests that skip the OAuth call."""
        with self._lock:
            token = secrets.token_urlsafe(24)
            self._tokens[token] = self.clock() + self.token_lifetime
            return token

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.router.add
        add("POST", "/OAuth/Token", self._token)
        add("GET", "/v2/Customers", self._list_customers)
        add("POST", "/v2/Customers", self._post_customer)
        add("GET", "/v2/Customers/{id:int}", self._get_customer)
        add("PATCH", "/v2/Customers/{id:int}", self._patch_customer)
        add("DELETE", "/v2/Customers/{id:int}", self._delete_customer)
        add("GET", "/v2/ContactPersons", self._list_contact_persons)
        add("POST", "/v2/ContactPersons/{contact_id:int}", self._post_contact_person)
        add("GET", "/v2/ContactPersons/{contact_id:int}/{id:int}", self._get_contact_person)
        add("PATCH", "/v2/ContactPersons/{contact_id:int}/{id:int}", self._patch_contact_person)
        add("DELETE", "/v2/ContactPersons/{contact_id:int}/{id:int}", self._delete_contact_person)
        add("GET", "/v2/Departments", self._list_departments)
        add("POST", "/v2/Departments", self._post_department)
        add("GET", "/v2/Departments/{id:int}", self._get_department)
        add("PATCH", "/v2/Departments/{id:int}", self._patch_department)
        add("DELETE", "/v2/Departments/{id:int}", self._delete_department)
        add("GET", "/v2/Suppliers", self._list_suppliers)
        add("GET", "/v2/Suppliers/{id:int}", self._get_supplier)

    # -- auth and throttling ------------------------------------------------------------------

    def authorise(self, request: Request, match: Match) -> Response | None:
        """URL length, subscription key on every call, bearer token on API calls, rate limit."""
        length = _url_length(request)
        if self.max_url_length is not None and length > self.max_url_length:
            # A misleading 404, as reported of the real API: nothing says the URL was too long.
            self.refused_urls.append(length)
            return self.error(404, "Not Found", request)
        key = request.headers.get("ocp-apim-subscription-key")
        if not key:
            return _apim_denied(
                "Access denied due to missing subscription key. Make sure to "
                "include subscription key when making requests to an API."
            )
        if not secrets.compare_digest(key, self.credentials.subscription_key):
            return _apim_denied(
                "Access denied due to invalid subscription key. Make sure to "
                "provide a valid key for an active subscription."
            )
        throttled = self._throttle(key, request)
        if throttled is not None:
            return throttled
        if match.route.template == "/OAuth/Token":
            return None
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            return self.error(401, "The access token is missing or invalid.", request)
        if self.clock() >= expiry:
            return self.error(401, "The access token has expired.", request)
        resource = match.route.template.split("/")[2]
        if resource in self.forbidden:
            return self.error(
                403,
                f"The integration does not have the access role needed for {resource}.",
                request,
            )
        return None

    def _throttle(self, key: str, request: Request) -> Response | None:
        if self.rate_limit is None:
            return None
        now = self.clock()
        window = self._calls.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            wait = self.rate_limit_retry_after
            return self.error(
                429, f"Rate limit is exceeded. Try again in {wait} seconds.", request
            ).with_headers([("Retry-After", str(wait))])
        window.append(now)
        return None

    def _token(self, request: Request) -> Response:
        basic = request.headers.get("authorization", "")
        scheme, _, encoded = basic.partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        app_key, _, client_key = decoded.partition(":")
        form = _parse_form(request.body)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        if (
            scheme.lower() != "basic"
            or not secrets.compare_digest(app_key, self.credentials.application_key)
            or not secrets.compare_digest(client_key, self.credentials.client_key)
        ):
            return _oauth_error("invalid_client", "The application key or client key is invalid.")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self.clock() + self.token_lifetime
        return Response.json(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    # -- customers ----------------------------------------------------------------------------

    def _list_customers(self, request: Request) -> Response:
        return self._list(self.customers, "Customers", request)

    def _get_customer(self, request: Request, id: str) -> Response:
        return self._get(self.customers, int(id), request)

    def _post_customer(self, request: Request) -> Response:
        return self._post(request, "a CustomerPostDto object", "Customers", self._add_customer)

    def _post(
        self,
        request: Request,
        expected: str,
        collection: str,
        add: Callable[..., dict[str, Any]],
    ) -> Response:
        """Create one record from a POST body: 201 with its DTO, or a ProblemDetails answer."""
        body = request.json()
        if not isinstance(body, dict):
            return self.error(400, f"The request body must be {expected}.", request)
        try:
            dto = add(body, validate=True)
        except _Invalid as exc:
            return self._invalid(exc, request)
        self.wrote()
        return Response.json(
            201, dto, [("Location", f"{request.base_url}/v2/{collection}/{dto['Id']}")]
        )

    def _add_customer(self, wire: dict[str, Any], *, validate: bool) -> dict[str, Any]:
        fields = _canonical(wire, CUSTOMER_POST_FIELDS, strict=validate)
        if validate:
            _check_types(fields)
            self._check_customer(fields, None)
        extra = {} if validate else {k: v for k, v in wire.items() if k not in fields}
        customer_id = int(extra.pop("Id", None) or self._new_contact_id())
        if fields.get("IsPerson") and not fields.get("Name"):
            fields["Name"] = " ".join(
                part for part in (fields.get("FirstName"), fields.get("LastName")) if part
            )
        stamp = self._stamp()
        iso = _iso(stamp)
        row = {
            "Id": customer_id,
            "Number": None,
            "Name": None,
            "IsPerson": False,
            "FirstName": None,
            "LastName": None,
            "EmailAddress": None,
            "IsActive": True,
            "IsArchived": False,
            "CustomerCreatedDateTimeOffset": iso,
            "ContactCreatedDateTimeOffset": iso,
            **fields,
            **extra,
        }
        if row["Number"] is None:
            row["Number"] = self._new_customer_no()
        self._customer_numbers[row["Number"]] = customer_id
        self._put(self.customers, customer_id, row, stamp)
        return self._dto(self.customers, customer_id)

    def _check_customer(self, fields: dict[str, Any], own_id: int | None) -> None:
        is_person = bool(fields.get("IsPerson"))
        if not is_person and not (fields.get("Name") or "").strip():
            raise _Invalid("Name", "The Name field is required.")
        if is_person and not (
            (fields.get("FirstName") or "").strip() or (fields.get("Name") or "").strip()
        ):
            raise _Invalid("FirstName", "A person customer needs a FirstName or a Name.")
        number = fields.get("Number")
        holder = self._customer_numbers.get(number) if number is not None else None
        if (
            holder is not None
            and holder != own_id
            and self.customers.rows.get(holder, {}).get("Number") == number
        ):
            raise _Invalid("Number", f"Customer number {number} is already in use.")

    def _patch_customer(self, request: Request, id: str) -> Response:
        customer_id = int(id)

        def check(fields: dict[str, Any]) -> None:
            self._check_customer(fields, customer_id)

        return self._patch(self.customers, customer_id, request, CUSTOMER_POST_FIELDS, check)

    def _delete_customer(self, request: Request, id: str) -> Response:
        customer_id = int(id)
        if customer_id not in self.customers.rows:
            return self._not_found(self.customers, customer_id, request)
        persons = [p for p in self.contact_persons.rows.values() if p["ContactId"] == customer_id]
        if persons:
            return self.error(
                409,
                f"Customer {customer_id} still has {len(persons)} contact person(s) and cannot "
                "be deleted.",
                request,
            )
        return self._deleted(self.customers, customer_id)

    # -- contact persons ----------------------------------------------------------------------

    def _list_contact_persons(self, request: Request) -> Response:
        return self._list(self.contact_persons, "ContactPersons", request)

    def _post_contact_person(self, request: Request, contact_id: str) -> Response:
        owner = int(contact_id)
        if owner not in self.customers.rows and owner not in self.suppliers.rows:
            return self.error(404, f"No customer or supplier with id {owner}.", request)
        body = request.json()
        if not isinstance(body, dict):
            return self.error(400, "The request body must be a ContactPersonPostDto.", request)
        try:
            dto = self._add_contact_person(owner, body, validate=True)
        except _Invalid as exc:
            return self._invalid(exc, request)
        self.wrote()
        location = f"{request.base_url}/v2/ContactPersons/{owner}/{dto['Id']}"
        return Response.json(201, dto, [("Location", location)])

    def _add_contact_person(
        self, owner: int, wire: dict[str, Any], *, validate: bool
    ) -> dict[str, Any]:
        fields = _canonical(wire, CONTACT_PERSON_POST_FIELDS, strict=validate)
        if validate:
            _check_types(fields)
            _check_contact_person(fields)
        extra = {} if validate else {k: v for k, v in wire.items() if k not in fields}
        extra.pop("ContactId", None)
        person_id = int(extra.pop("Id", None) or self._new_person_id())
        stamp = self._stamp()
        row = {
            "Id": person_id,
            "ContactId": owner,
            "FirstName": None,
            "LastName": None,
            "EmailAddress": None,
            "IsActive": True,
            "CreatedDateTimeOffset": _iso(stamp),
            **fields,
            **extra,
        }
        self._put(self.contact_persons, person_id, row, stamp)
        return self._dto(self.contact_persons, person_id)

    def _person_of(self, contact_id: str, id: str) -> int | None:
        person_id = int(id)
        row = self.contact_persons.rows.get(person_id)
        return person_id if row is not None and row["ContactId"] == int(contact_id) else None

    def _get_contact_person(self, request: Request, contact_id: str, id: str) -> Response:
        person_id = self._person_of(contact_id, id)
        if person_id is None:
            return self._not_found(self.contact_persons, int(id), request)
        return self._get(self.contact_persons, person_id, request)

    def _patch_contact_person(self, request: Request, contact_id: str, id: str) -> Response:
        person_id = self._person_of(contact_id, id)
        if person_id is None:
            return self._not_found(self.contact_persons, int(id), request)
        return self._patch(
            self.contact_persons,
            person_id,
            request,
            CONTACT_PERSON_POST_FIELDS,
            _check_contact_person,
        )

    def _delete_contact_person(self, request: Request, contact_id: str, id: str) -> Response:
        person_id = self._person_of(contact_id, id)
        if person_id is None:
            return self._not_found(self.contact_persons, int(id), request)
        return self._deleted(self.contact_persons, person_id)

    # -- departments --------------------------------------------------------------------------

    def _list_departments(self, request: Request) -> Response:
        return self._list(self.departments, "Departments", request)

    def _post_department(self, request: Request) -> Response:
        return self._post(request, "a DepartmentPostDto", "Departments", self._add_department)

    def _add_department(self, wire: dict[str, Any], *, validate: bool) -> dict[str, Any]:
        fields = _canonical(wire, DEPARTMENT_POST_FIELDS, strict=validate)
        if validate:
            _check_types(fields)
            self._check_department(fields, None)
        extra = {} if validate else {k: v for k, v in wire.items() if k not in fields}
        department_id = int(extra.pop("Id", None) or self._new_department_id())
        stamp = self._stamp()
        row = {
            "Id": department_id,
            "Code": None,
            "Name": None,
            "IsActive": True,
            "CreatedDateTimeOffset": _iso(stamp),
            **fields,
            **extra,
        }
        if row["Code"] is None:
            row["Code"] = str(department_id)
        self._put(self.departments, department_id, row, stamp)
        return self._dto(self.departments, department_id)

    def _check_department(self, fields: dict[str, Any], own_id: int | None) -> None:
        if not (fields.get("Name") or "").strip():
            raise _Invalid("Name", "The Name field is required.")
        code = fields.get("Code")
        if code is not None and any(
            row.get("Code") == code and department_id != own_id
            for department_id, row in self.departments.rows.items()
        ):
            raise _Invalid("Code", f"Department code '{code}' is already in use.")

    def _get_department(self, request: Request, id: str) -> Response:
        return self._get(self.departments, int(id), request)

    def _patch_department(self, request: Request, id: str) -> Response:
        department_id = int(id)

        def check(fields: dict[str, Any]) -> None:
            self._check_department(fields, department_id)

        # Departments answer a successful patch with 200 and an empty body (the document
        # declares no content for it), and take only DepartmentPatchDto's properties.
        return self._patch(
            self.departments, department_id, request, DEPARTMENT_PATCH_FIELDS, check, body=False
        )

    def _delete_department(self, request: Request, id: str) -> Response:
        department_id = int(id)
        if department_id not in self.departments.rows:
            return self._not_found(self.departments, department_id, request)
        if any(row.get("DepartmentId") == department_id for row in self.customers.rows.values()):
            return self.error(409, f"Department {department_id} is in use by customers.", request)
        return self._deleted(self.departments, department_id)

    # -- suppliers ----------------------------------------------------------------------------

    def _list_suppliers(self, request: Request) -> Response:
        return self._list(self.suppliers, "Suppliers", request)

    def _get_supplier(self, request: Request, id: str) -> Response:
        return self._get(self.suppliers, int(id), request)

    # -- shared mechanics ---------------------------------------------------------------------

    def _list(self, table: _Table, resource: str, request: Request) -> Response:
        """One page of ``resource``, filtered by the parameters its document declares."""
        try:
            page_number = _int_param(request, "PageNumber", 1, minimum=1)
            page_size = _int_param(request, "PageSize", DEFAULT_PAGE_SIZE, minimum=1)
            keep = list_predicates(resource, request)
        except _Invalid as exc:
            return self._invalid(exc, request)
        if page_size > MAX_PAGE_SIZE:
            return self._invalid(
                _Invalid("PageSize", f"PageSize must be at most {MAX_PAGE_SIZE}."), request
            )
        ids = [
            row_id
            for row_id in sorted(table.rows)
            if all(
                predicate(Entry(table.rows[row_id], table.changed[row_id], table.created[row_id]))
                for predicate in keep
            )
        ]
        start = (page_number - 1) * page_size
        page = ids[start : start + page_size]
        if not page:
            return Response.empty(204)
        wanted = _fields_param(request)
        response = Response.json(200, [_select(self._dto(table, i), wanted) for i in page])
        if not self.pagination_header:
            return response
        more = start + page_size < len(ids)
        link = _page_link(request, page_number + 1) if more else None
        return response.with_headers([("X-Pagination", json.dumps({"nextPageLink": link}))])

    def _get(self, table: _Table, row_id: int, request: Request) -> Response:
        if row_id not in table.rows:
            return self._not_found(table, row_id, request)
        return Response.json(200, _select(self._dto(table, row_id), _fields_param(request)))

    def _patch(
        self,
        table: _Table,
        row_id: int,
        request: Request,
        writable: tuple[str, ...],
        check: Callable[[dict[str, Any]], None],
        *,
        body: bool = True,
    ) -> Response:
        if row_id not in table.rows:
            return self._not_found(table, row_id, request)
        if request.content_type != "application/json-patch+json":
            return self.error(
                415, "PATCH takes a JSON Patch document (application/json-patch+json).", request
            )
        operations = request.json()
        if not isinstance(operations, list):
            return self.error(400, "The body must be a JSON Patch array of operations.", request)
        current = dict(table.rows[row_id])
        try:
            updated = _apply_patch(current, operations, writable, table.patch_dto)
            changed = {k: v for k, v in updated.items() if current.get(k) != v}
            _check_types(changed)
            check(updated)
        except _Invalid as exc:
            return self._invalid(exc, request)
        if changed:
            self._put(table, row_id, updated, self._stamp())
            if table is self.customers and updated.get("Number") is not None:
                self._customer_numbers[updated["Number"]] = row_id
            self.wrote()
        if not body:
            return Response.empty(200)
        return Response.json(200, self._dto(table, row_id))

    def _put(self, table: _Table, row_id: int, row: dict[str, Any], stamp: int) -> None:
        row["LastChangedDateTimeOffset"] = _iso(stamp)
        table.rows[row_id] = row
        table.changed[row_id] = stamp
        table.created.setdefault(row_id, stamp)

    def _deleted(self, table: _Table, row_id: int) -> Response:
        """Delete a row and answer as the document says: 200 with no body, never 204."""
        del table.rows[row_id]
        del table.changed[row_id]
        table.created.pop(row_id, None)
        self.wrote()
        return Response.empty(200)

    def _dto(self, table: _Table, row_id: int) -> dict[str, Any]:
        return {k: v for k, v in table.rows[row_id].items() if k in table.dto_fields}

    def _all(self, table: _Table) -> list[dict[str, Any]]:
        return [self._dto(table, row_id) for row_id in sorted(table.rows)]

    def _stamp(self) -> int:
        """Now in epoch microseconds, strictly after the previous stamp (so every write moves)."""
        now = round(self.clock() * 1_000_000)
        self._last_stamp = max(now, self._last_stamp + 1)
        return self._last_stamp

    def _new_contact_id(self) -> int:
        while self._next_contact_id in self.customers.rows or self._next_contact_id in (
            self.suppliers.rows
        ):
            self._next_contact_id += 1
        self._next_contact_id += 1
        return self._next_contact_id - 1

    def _new_person_id(self) -> int:
        while self._next_person_id in self.contact_persons.rows:
            self._next_person_id += 1
        self._next_person_id += 1
        return self._next_person_id - 1

    def _new_department_id(self) -> int:
        while self._next_department_id in self.departments.rows:
            self._next_department_id += 1
        self._next_department_id += 1
        return self._next_department_id - 1

    def _new_customer_no(self) -> int:
        while self._next_customer_no in self._customer_numbers:
            self._next_customer_no += 1
        self._next_customer_no += 1
        return self._next_customer_no - 1

    def _new_supplier_no(self) -> int:
        self._next_supplier_no += 1
        return self._next_supplier_no - 1

    def _not_found(self, table: _Table, row_id: int, request: Request) -> Response:
        return self.error(404, f"{table.label} with id {row_id} was not found.", request)

    def _invalid(self, exc: _Invalid, request: Request) -> Response:
        return problem(
            400,
            f"{exc.field}: {exc.message}",
            request.path,
            title="One or more validation errors occurred.",
            errors={exc.field: [exc.message]},
        )

    def error(self, status: int, detail: str, request: Request) -> Response:
        """A ProblemDetails response; a 429 comes from the API gateway, in the gateway's shape."""
        if status == 429:
            # Azure API Management's rate-limit policy answers before the API sees the call:
            # {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}
            return Response.json(429, {"statusCode": 429, "message": detail})
        return problem(status, detail, request.path)


# -- module helpers --------------------------------------------------------------------------


def problem(
    status: int,
    detail: str,
    instance: str,
    *,
    title: str | None = None,
    errors: dict[str, list[str]] | None = None,
) -> Response:
    """An RFC 7807 ProblemDetails response, PascalCase like the spec's schema."""
    payload: dict[str, Any] = {
        "Type": f"https://httpstatuses.io/{status}",
        "Title": title or reason_phrase(status),
        "Status": status,
        "Detail": detail,
        "Instance": instance,
    }
    if errors is not None:
        payload["Errors"] = errors
    body = Response.json(status, payload).body
    return Response(status, body, (("Content-Type", "application/problem+json; charset=utf-8"),))


def _page_link(request: Request, page_number: int) -> str:
    """The URL of page ``page_number`` of the same list, with the same filters."""
    paging = ("pagenumber", "resourceparameter.pagenumber")
    pairs = [(k, v) for k, vs in request.query.items() if k.lower() not in paging for v in vs]
    pairs.append(("PageNumber", str(page_number)))
    return f"{request.base_url}{request.path}?{urlencode(pairs)}"


def _url_length(request: Request) -> int:
    """The length of the URL as the client sent it (scheme, host, encoded path and query)."""
    path = quote(request.path, safe="/:@!$&'()*+,;=-._~")
    return len(request.base_url + path) + (
        len(request.query_string) + 1 if request.query_string else 0
    )


def _apim_denied(message: str) -> Response:
    # The API gateway (Azure API Management) answers these itself, in its own format.
    return Response.json(401, {"statusCode": 401, "message": message})


def _oauth_error(error: str, description: str) -> Response:
    return Response.json(400, {"error": error, "error_description": description})


def _parse_form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", errors="replace")))


def _canonical(wire: dict[str, Any], allowed: Iterable[str], *, strict: bool) -> dict[str, Any]:
    """Map property names case-insensitively onto the DTO's PascalCase names."""
    by_lower = {name.lower(): name for name in allowed}
    out: dict[str, Any] = {}
    for key, value in wire.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            if strict:
                raise _Invalid(str(key), f"'{key}' is not a property that can be written.")
            continue
        out[name] = value
    return out


def _check_types(fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        if name in _STRING_FIELDS and not isinstance(value, str):
            raise _Invalid(name, f"The value for {name} must be a string.")
        if name in _BOOL_FIELDS and not isinstance(value, bool):
            raise _Invalid(name, f"The value for {name} must be true or false.")
        if name in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)):
            raise _Invalid(name, f"The value for {name} must be an integer.")
        if name in _EMAIL_FIELDS and value != "" and not _EMAIL.match(value):
            raise _Invalid(name, f"'{value}' is not a valid e-mail address.")


def _check_contact_person(fields: dict[str, Any]) -> None:
    for name in ("FirstName", "LastName"):
        if not (fields.get(name) or "").strip():
            raise _Invalid(name, f"The {name} field is required.")


def _apply_patch(
    row: dict[str, Any], operations: list[Any], writable: tuple[str, ...], dto: str
) -> dict[str, Any]:
    by_lower = {name.lower(): name for name in writable}
    out = dict(row)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise _Invalid(f"[{number}]", "Each patch operation must be an object.")
        op = str(operation.get("op", "")).lower()
        path = str(operation.get("path", ""))
        name = by_lower.get(path.lstrip("/").lower()) if path.count("/") == 1 else None
        if name is None:
            # The wording of the document's own example (ASP.NET's JSON Patch message).
            segment = path.rsplit("/", 1)[-1].lower()
            raise _Invalid(
                path or f"[{number}]",
                f"{dto}: The target location specified by path segment '{segment}' was not found.",
            )
        if op in ("replace", "add"):
            if "value" not in operation:
                raise _Invalid(name, f"Operation '{op}' needs a value.")
            out[name] = operation["value"]
        elif op == "remove":
            out[name] = None
        else:
            raise _Invalid(name, f"Patch operation '{op}' is not supported.")
    return out


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    raw = request.param(name, ignore_case=True) or request.param(
        f"resourceParameter.{name}", ignore_case=True
    )
    if raw is None or raw == "":
        return default
    if not _is_int(raw) or int(raw) < minimum:
        raise _Invalid(name, f"The value '{raw}' is not valid for {name}.")
    return int(raw)


def _fields_param(request: Request) -> set[str] | None:
    raw = request.param("Fields", ignore_case=True) or request.param(
        "resourceParameter.Fields", ignore_case=True
    )
    if not raw:
        return None
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def _select(dto: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    if wanted is None:
        return dto
    return {k: v for k, v in dto.items() if k.lower() in wanted}


def _iso(stamp_us: int) -> str:
    moment = _EPOCH + timedelta(microseconds=stamp_us)
    return moment.isoformat(timespec="microseconds")
