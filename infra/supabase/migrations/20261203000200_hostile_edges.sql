-- Hostile edges, round two (issue 13): purged accounts' tokens, an injectable clock for
-- rate-limit windows, deadlines for work that used to wait forever, payment events keyed
-- on what was verified, and no sequence privileges for the API roles.

-- ---------------------------------------------------------------------------------------
-- Payment events: one row per verified event, not per byte sequence

-- The column keeps its name; what it holds changed (izgens.plisio_signature.canonical_sha256):
-- the same fields re-sent with other key order, spacing or escapes are one event.
comment on column public.payment_events.body_sha256 is
  'sha256 of the canonical form verify_hash signs: the fields without verify_hash, keys '
  'sorted, compact separators, non-ASCII raw (reconciliation: of the operation payload)';

-- ---------------------------------------------------------------------------------------
-- The clock of rate-limit windows

-- now(), unless the session's `izgens.clock` setting pins it (tests do, so a window
-- boundary never falls between a test's requests); production never sets it.
create or replace function izgens.clock()
returns timestamptz
language sql stable as $$
  select coalesce(nullif(current_setting('izgens.clock', true), '')::timestamptz, now())
$$;

-- As before (fixed windows, refused hits not counted), counted on izgens.clock().
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

-- ---------------------------------------------------------------------------------------
-- One answer for a purged account's token: every route that needs a user runs one of
-- these (or a function that raises the same), so a token that outlives its user is 401
-- (IZ008 'profile', izgens.db) on every route, in the round trip the route already makes.

-- The caller's profile, made on first sight while the auth user exists (ensure_profile);
-- IZ008 'profile' once the user is gone. Never revives a purged account.
create or replace function izgens.require_user(p_user uuid)
returns void
language plpgsql as $$
begin
  perform 1 from izgens.ensure_profile(p_user);
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
end $$;

create or replace function izgens.ledger_page(p_user uuid, p_before bigint, p_limit int)
returns setof public.credit_ledger
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query
    select * from public.credit_ledger
     where user_id = p_user and (p_before is null or id < p_before)
     order by id desc
     limit greatest(p_limit, 0);
end $$;

create or replace function izgens.purchases_page(
  p_user uuid, p_before_at timestamptz, p_before_id uuid, p_limit int
) returns setof public.purchases
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query
    select * from public.purchases
     where user_id = p_user
       and (p_before_at is null or (created_at, id) < (p_before_at, p_before_id))
     order by created_at desc, id desc
     limit greatest(p_limit, 0);
end $$;

create or replace function izgens.generations_page(
  p_user uuid, p_before_at timestamptz, p_before_id uuid, p_limit int
) returns setof public.generations
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query
    select * from public.generations
     where user_id = p_user and deleted_at is null
       and (p_before_at is null or (created_at, id) < (p_before_at, p_before_id))
     order by created_at desc, id desc
     limit greatest(p_limit, 0);
end $$;

-- The caller's own generation (another user's id is simply not there).
create or replace function izgens.user_generation(p_user uuid, p_id uuid)
returns setof public.generations
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query
    select * from public.generations
     where id = p_id and user_id = p_user and deleted_at is null;
end $$;

create or replace function izgens.active_packs(p_user uuid)
returns setof public.credit_packs
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query select * from public.credit_packs where active order by sort_order, id;
end $$;

create or replace function izgens.user_export(p_user uuid, p_id uuid)
returns setof public.data_exports
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query select * from public.data_exports where id = p_id and user_id = p_user;
end $$;

-- As before, with the caller checked first (a purged user's generation is not "not found").
create or replace function izgens.delete_generation(p_user uuid, p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations;
begin
  perform izgens.require_user(p_user);
  select * into v_gen from public.generations
   where id = p_id and user_id = p_user and deleted_at is null
   for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'generation';
  end if;
  update public.generations set deleted_at = now(), updated_at = now() where id = p_id;
  return v_gen;
end $$;

-- As before, with the caller checked first.
create or replace function izgens.cancel_deletion(p_user uuid)
returns public.deletion_requests
language plpgsql as $$
declare
  v_req public.deletion_requests;
begin
  perform izgens.require_user(p_user);
  select * into v_req from public.deletion_requests
   where user_id = p_user and status in ('scheduled', 'purging')
   for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'deletion request';
  end if;
  if v_req.status = 'purging' then
    perform izgens._invalid_transition('purging', 'canceled');
  end if;
  update public.deletion_requests set status = 'canceled', canceled_at = now()
   where id = v_req.id returning * into v_req;
  return v_req;
end $$;

-- ---------------------------------------------------------------------------------------
-- Nothing waits forever

-- Generations never sent to the provider (waiting for capacity: 429 for hours, a trial
-- quota used up) and older than p_max_wait_seconds are failed and refunded, oldest first,
-- through fail_generation (exactly once: its row lock and the ledger's unique refund).
-- Rows a dispatcher holds are skipped; a claimed row is no longer waiting.
create or replace function izgens.fail_waiting_generations(p_max_wait_seconds int, p_limit int)
returns setof public.generations
language plpgsql as $$
declare
  v_id uuid;
begin
  for v_id in
    select id from public.generations
     where status = 'queued' and submit_attempted_at is null
       and created_at < now() - make_interval(secs => greatest(p_max_wait_seconds, 0))
     order by created_at, id
     limit greatest(p_limit, 0)
     for update skip locked
  loop
    return next izgens.fail_generation(
      v_id, 'capacity_timeout',
      format('the video service had no capacity for %s minutes; the credits were refunded',
             greatest(p_max_wait_seconds, 0) / 60));
  end loop;
end $$;

-- A pending purchase that never got an invoice (Plisio failed at checkout and the buyer
-- never retried) and is older than p_older_than_seconds: expired, once reconciliation has
-- found no invoice for it at Plisio either. A payment that shows up later still completes
-- it (record_payment_event moves expired forward to completed).
create or replace function izgens.expire_uninvoiced_purchase(
  p_purchase uuid, p_older_than_seconds int
) returns setof public.purchases
language sql as $$
  update public.purchases
     set status = 'expired', updated_at = now()
   where id = p_purchase
     and status = 'pending' and plisio_txn_id is null and invoice_url is null
     and created_at < now() - make_interval(secs => greatest(p_older_than_seconds, 0))
  returning *;
$$;

-- ---------------------------------------------------------------------------------------
-- Least privilege to the last object: on Supabase the default privileges hand the API
-- roles USAGE/SELECT/UPDATE on every new sequence (the identity sequences of credit_ledger
-- and payment_events among them); they need none, now or for tables added later.

revoke all on all sequences in schema public from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
