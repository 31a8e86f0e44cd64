-- Guards every paid or costly action shares: the error codes, who may act, rate limits
-- with their address buckets, and the clock their windows are counted on.
--
-- Errors use dedicated SQLSTATEs that izgens.db maps to Python exceptions (izgens.errors):
--   IZ001 insufficient_credits   detail: {"balance": n, "required": n}
--   IZ002 idempotency_conflict
--   IZ003 age_not_confirmed
--   IZ004 account_blocked
--   IZ005 deletion_pending
--   IZ006 rate_limited           detail: {"retry_after": seconds, "bucket": "..."}
--   IZ007 invalid_transition     detail: {"from": status, "to": status}
--   IZ008 not_found              detail: what was not found
--   IZ009 invalid_argument
--
-- Every change of money or state is one function in schema izgens: one transaction, one
-- round trip, idempotent by a unique key, checking the current state under a row lock.
-- Nothing in it is callable through the API roles: they have no USAGE on the schema, and
-- each migration that adds functions ends by revoking EXECUTE too, as a second lock.

create or replace function izgens._invalid_transition(p_from text, p_to text)
returns void
language plpgsql as $$
begin
  raise exception using errcode = 'IZ007', message = 'invalid_transition',
    detail = json_build_object('from', p_from, 'to', p_to)::text;
end $$;

-- ---------------------------------------------------------------------------------------
-- Who is calling

-- Creates the profile on first sight of a valid user, but only while the auth user exists:
-- a token that outlives its (purged) user can never bring the account back.
create or replace function izgens.ensure_profile(p_user uuid)
returns setof public.profiles
language plpgsql as $$
begin
  return query select * from public.profiles where user_id = p_user;
  if found then
    return;
  end if;
  return query
    insert into public.profiles (user_id)
    select id from auth.users where id = p_user
    on conflict (user_id) do update set user_id = excluded.user_id
    returning *;
end $$;

-- One answer for a purged account's token: every route that needs a user runs this (or a
-- function that raises the same), so a token that outlives its user is 401 (IZ008
-- 'profile', izgens.db) on every route, in the round trip the route already makes.
create or replace function izgens.require_user(p_user uuid)
returns void
language plpgsql as $$
begin
  perform 1 from izgens.ensure_profile(p_user);
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
end $$;

-- Account gates shared by every paid action (generate, upload, checkout), on the profile
-- row the caller has read (and locked, where it then spends).
create or replace function izgens.require_account_open(p_profile public.profiles)
returns void
language plpgsql as $$
begin
  if p_profile.blocked_at is not null then
    raise exception using errcode = 'IZ004', message = 'account_blocked';
  end if;
  if p_profile.age_confirmed_at is null then
    raise exception using errcode = 'IZ003', message = 'age_not_confirmed';
  end if;
  if exists (select 1 from public.deletion_requests
              where user_id = p_profile.user_id and status in ('scheduled', 'purging')) then
    raise exception using errcode = 'IZ005', message = 'deletion_pending';
  end if;
end $$;

-- ---------------------------------------------------------------------------------------
-- Rate limits

-- now(), unless the session's `izgens.clock` setting pins it (tests do, so a window
-- boundary never falls between a test's requests); production never sets it.
create or replace function izgens.clock()
returns timestamptz
language sql stable as $$
  select coalesce(nullif(current_setting('izgens.clock', true), '')::timestamptz, now())
$$;

-- Fixed-window counter on izgens.clock(). Returns 0 when the hit is admitted (and counted),
-- else the seconds until the window ends. Refused hits are not counted; the row lock of
-- the upsert makes concurrent callers queue, so a window never admits more than p_limit.
create or replace function izgens.rate_limit(p_bucket text, p_limit int, p_window_seconds int)
returns int
language plpgsql as $$
declare
  v_now timestamptz := izgens.clock();
  v_window timestamptz;
  v_hits int;
begin
  if p_limit is null or p_window_seconds is null or p_window_seconds <= 0 then
    return 0;
  end if;
  v_window := to_timestamp(floor(extract(epoch from v_now) / p_window_seconds) * p_window_seconds);
  insert into public.rate_limits as r (bucket, window_start, hits)
  values (p_bucket, v_window, 1)
  on conflict (bucket, window_start) do update set hits = r.hits + 1 where r.hits < p_limit
  returning hits into v_hits;
  if v_hits is null or v_hits > p_limit then
    return greatest(1, ceil(extract(epoch from (v_window + make_interval(secs => p_window_seconds) - v_now)))::int);
  end if;
  return 0;
end $$;

create or replace function izgens.require_rate_limit(p_bucket text, p_limit int, p_window_seconds int)
returns void
language plpgsql as $$
declare
  v_retry int := izgens.rate_limit(p_bucket, p_limit, p_window_seconds);
begin
  if v_retry > 0 then
    raise exception using errcode = 'IZ006', message = 'rate_limited',
      detail = json_build_object('retry_after', v_retry, 'bucket', split_part(p_bucket, ':', 1))::text;
  end if;
end $$;

-- The bucket of a client address: the address itself; for IPv6 its /64, since one
-- subscriber holds a whole /64 and could otherwise rotate through it. 'unknown' when none.
-- The failed sign-in counter (izgens.http) shares these buckets.
create or replace function izgens.ip_bucket(p_ip inet)
returns text
language sql immutable as $$
  select case
    when p_ip is null then 'unknown'
    when family(p_ip) = 6 then host(network(set_masklen(p_ip, 64))) || '/64'
    else host(p_ip)
  end;
$$;

-- The per-address limit of one action; no address (a caller we cannot place) is not
-- limited here: the per-user limit still holds.
create or replace function izgens.require_ip_rate_limit(
  p_action text, p_ip inet, p_limit int, p_window_seconds int
) returns void
language plpgsql as $$
begin
  if p_ip is not null then
    perform izgens.require_rate_limit(
      p_action || ':ip:' || izgens.ip_bucket(p_ip), p_limit, p_window_seconds);
  end if;
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
