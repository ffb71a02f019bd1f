"""The unblock / classroom / exam / exclusion workflow, on top of the store.

No web framework here: the console and the CLI call these functions inside a unit of work
(`with store.write() as s: ...`). Every state change takes the writer's lock, bumps the state
revision and writes a `changes` row (who, when, why) in that same transaction.

The choices this layer makes, and what it offers besides the core steps:

Choices
- Actors in the change log, `endorsed_by` and `decided_by` are "role:username" ("ict:jan").
  The CLI acts as ICT under the name given with --actor (default: the OS login): "ict:NAME".
- Unknown ids raise NotFound, a subclass of Invalid ("bad input").
- Passwords need at least 8 characters (Invalid otherwise); usernames are lower-cased and
  limited to a-z 0-9 . _ @ - (max. 64).
- get_user / list_users / load_session only see active accounts; list_accounts (ICT) sees all.
- load_session: sliding expiry (ttl after the last use, written at most once a minute) capped at
  24 h after login; the extension is only written in a Store.write() unit of work.
- authenticate: `source` is not stored (no client addresses in the database). Throttling is by
  growing delays, never a lockout (throttle.py): the database brakes per username, the console
  per client address in its own memory; attempts during a wait are not recorded and do not check
  the password.
- Account administration (useradmin.py, ICT only): add, disable/enable, role, zones (checked
  against the policy's zone names the caller passes), e-mail, a new password or a one-time reset
  link; never the last active ICT account, never one's own.
- submit_request: without `sites`, the blocked URL's host is the site; `requester` may be empty
  when a logged-in user submits (their display name is used). A leidinggevende/ict with a ground
  needs `end` (start defaults to now); the request gets a `submit` and an `endorse` change.
- endorse_request only from `submitted` (Conflict otherwise); `start=None` means now.
- approve_request: an approved site is within an endorsed one if it is the same host, a
  subdomain, or a path under it; zones/roles must be a subset (an empty endorsed list means
  "all", so anything narrower is fine); the window may only shrink and must not be over.
- decline_request: from `submitted` or `endorsed`.
- revoke_grant / end_*: Conflict if the object already ended (revoked, expired).
- extend_grant (ict): only a later end, only while the grant has not ended (Conflict otherwise);
  not capped by the endorsed window (ICT may open sites without a request too, create_grant); the
  `extend` change's reason holds the new and the old end (parse_extension reads them back).
- exclude refuses networks wider than /16 (IPv4) or /48 (IPv6).
- record_expiries: the `expire` change is dated at the moment the object ended (actor "systeem").
- counts adds "submitted_requests" and "endorsed_requests" (pending = both).

Additions (all optional to use)
- RequestView has extra fields with defaults: reason (the requester's text), token (an
  unguessable status-link key: request numbers are sequential, so a public status page must use
  find_request(s, token), never the number), grant_status, endorsed_at, decided_at.
- withdraw_request (leidinggevende|ict), create_grant (ict, no request; the CLI's `grant add`),
  find_request, list_grants/GrantView, list_openings/OpeningView, list_exams/ExamView,
  list_exclusions/ExclusionView, NotFound.
- records.py (read only): one truth per request, grant and exclusion: the effective scope and
  window (what ICT approved, not what was endorsed), the state at a moment (STATES) and the
  history from the change log, with people by display name (people / Person).
- E-mail notifications: the request steps take `notices` (notify.Notices; None: mail is off)
  and then write the mails they cause into the outbox in their own transaction (outbox.py; who
  gets what: notify.py). submit_request keeps `requester_email` only with notices; approve,
  decline and withdraw erase it.
"""

from ..roles import ROLES
from .accounts import authenticate, create_user, get_user, list_users
from .classroom import (
    ExamView,
    ExclusionView,
    OpeningView,
    counts,
    end_exam,
    end_exclusion,
    end_opening,
    exclude,
    list_exams,
    list_exclusions,
    list_openings,
    open_classroom,
    record_expiries,
    start_exam,
)
from .common import User
from .errors import Conflict, Forbidden, Invalid, NotFound, Throttled
from .requests import (
    GrantView,
    RequestView,
    approve_request,
    create_grant,
    decline_request,
    endorse_request,
    extend_grant,
    find_request,
    get_request,
    list_grants,
    list_requests,
    revoke_grant,
    submit_request,
    withdraw_request,
)
from .sessions import end_session, load_session, start_session
from .useradmin import (
    AccountView,
    add_user,
    check_reset_link,
    create_reset_link,
    disable_user,
    enable_user,
    find_account,
    get_account,
    list_accounts,
    redeem_reset_link,
    set_email,
    set_password,
    set_role,
    set_zones,
)

__all__ = [
    "ROLES",
    "AccountView",
    "Conflict",
    "ExamView",
    "ExclusionView",
    "Forbidden",
    "GrantView",
    "Invalid",
    "NotFound",
    "OpeningView",
    "RequestView",
    "Throttled",
    "User",
    "add_user",
    "approve_request",
    "authenticate",
    "check_reset_link",
    "counts",
    "create_grant",
    "create_reset_link",
    "create_user",
    "decline_request",
    "disable_user",
    "enable_user",
    "end_exam",
    "end_exclusion",
    "end_opening",
    "end_session",
    "endorse_request",
    "exclude",
    "extend_grant",
    "find_account",
    "find_request",
    "get_account",
    "get_request",
    "get_user",
    "list_accounts",
    "list_exams",
    "list_exclusions",
    "list_grants",
    "list_openings",
    "list_requests",
    "list_users",
    "load_session",
    "open_classroom",
    "record_expiries",
    "redeem_reset_link",
    "revoke_grant",
    "set_email",
    "set_password",
    "set_role",
    "set_zones",
    "start_exam",
    "start_session",
    "submit_request",
    "withdraw_request",
]
