-- Privacy: data exports, account deletion and purge, retention. The promises these keep
-- are listed in docs/privacy.md.

-- ---------------------------------------------------------------------------------------
-- Exports, as background jobs: POST /privacy/exports only records the request; a job
-- claims it, builds the document (assembled here, in Postgres, and streamed to the
-- bucket), and reports progress that GET /privacy/exports/{id} shows. The states are drawn
-- at public.data_exports (20261204000100_schema.sql).

-- Records an export request: the profile, the per-user and per-address limits, the row.
create or replace function izgens.request_export(
  p_user uuid, p_limit int, p_window_seconds int, p_client_ip inet, p_ip_limit int
) returns public.data_exports
language plpgsql as $$
declare
  v_export public.data_exports;
begin
  perform 1 from public.profiles where user_id = p_user;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  perform izgens.require_rate_limit('export:user:' || p_user, p_limit, p_window_seconds);
  perform izgens.require_ip_rate_limit('export', p_client_ip, p_ip_limit, p_window_seconds);
  insert into public.data_exports (user_id) values (p_user) returning * into v_export;
  return v_export;
end $$;

create or replace function izgens.user_export(p_user uuid, p_id uuid)
returns setof public.data_exports
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query select * from public.data_exports where id = p_id and user_id = p_user;
end $$;

-- Every IP address stored about the user, and where.
create or replace function izgens.export_addresses(p_user uuid)
returns table (address text, stored_in text, times bigint, first_seen timestamptz,
               last_seen timestamptz)
language sql stable as $$
  select address, stored_in, count(*), min(at), max(at)
    from (
      select host(client_ip) as address, 'public.generations.client_ip' as stored_in,
             created_at as at
        from public.generations where user_id = p_user and client_ip is not null
      union all
      select host(client_ip), 'public.purchases.client_ip', created_at
        from public.purchases where user_id = p_user and client_ip is not null
      union all
      select host(ip), 'auth.sessions.ip', created_at
        from auth.sessions where user_id = p_user and ip is not null
      union all
      select ip_address, 'auth.audit_log_entries.ip_address', created_at
        from auth.audit_log_entries
       where payload ->> 'actor_id' = p_user::text and ip_address <> ''
    ) seen
   group by address, stored_in;
$$;

-- The document, one text line per COPY row: a header, then each section's opening, its
-- rows (each a JSON object Postgres writes whole) and its closing. The builder joins the
-- rows with commas and, in the sections with download links (generations: `video_url`,
-- reference uploads: `url`), adds the link it signs for the key in the second column
-- (null there: the row has no link now). No key or secret ever reaches the database.
--
-- One SELECT, so it is inlined into the caller's COPY and streams (a function that is not
-- inlined would materialise the whole document first). The caller disables parallel plans:
-- UNION ALL then yields its branches in order.
--
-- Sections hold every column of the user's rows (new columns flow in), less what is not
-- theirs to hold: auth credentials and one-time tokens, a session's token key, Plisio's
-- signature. `izgens.export_rows` below counts the lines, structure included.
create or replace function izgens.export_lines(p_user uuid, p_generated_at timestamptz)
returns table (line text, link_key text)
language sql stable as $$
  select '{"format":"izgens-export/1","generated_at":' || to_json(p_generated_at)::text
         || ',"account":' || json_build_object(
              'user_id', p.user_id, 'email', u.email, 'signed_up_at', u.created_at,
              'created_at', p.created_at, 'balance', p.balance,
              'age_confirmed_at', p.age_confirmed_at, 'display_name', p.display_name,
              'blocked_at', p.blocked_at, 'blocked_reason', p.blocked_reason)::text
         || ',"auth_user":' || (to_jsonb(u) - '{encrypted_password,confirmation_token,recovery_token,email_change_token_new,email_change_token_current,phone_change_token,reauthentication_token}'::text[])::text,
         null::text
    from public.profiles p join auth.users u on u.id = p.user_id
   where p.user_id = p_user

  union all select ',"identities":[', null
  union all
  (select row_to_json(i)::text, null
     from auth.identities i where i.user_id = p_user order by i.created_at, i.id)
  union all select ']', null

  union all select ',"sessions":[', null
  union all
  (select (to_jsonb(s) - 'refresh_token_hmac_key')::text, null
     from auth.sessions s where s.user_id = p_user order by s.created_at, s.id)
  union all select ']', null

  union all select ',"auth_audit_log":[', null
  union all
  (select json_build_object('id', a.id, 'created_at', a.created_at,
                               'ip_address', a.ip_address, 'payload', a.payload)::text, null
     from auth.audit_log_entries a where a.payload ->> 'actor_id' = p_user::text
    order by a.created_at, a.id)
  union all select ']', null

  union all select ',"ledger":[', null
  union all
  (select json_build_object('id', l.id, 'delta', l.delta, 'balance_after', l.balance_after,
                               'reason', l.reason, 'ref', l.ref, 'note', l.note,
                               'created_at', l.created_at)::text, null
     from public.credit_ledger l where l.user_id = p_user order by l.id)
  union all select ']', null

  union all select ',"generations":[', null
  union all
  (select row_to_json(g)::text,
          case when g.status = 'completed' and g.deleted_at is null then g.video_key end
     from public.generations g where g.user_id = p_user order by g.created_at, g.id)
  union all select ']', null

  union all select ',"reference_uploads":[', null
  union all
  (select row_to_json(r)::text, case when r.deleted_at is null then r.key end
     from public.reference_uploads r where r.user_id = p_user order by r.created_at, r.key)
  union all select ']', null

  union all select ',"purchases":[', null
  union all
  (select row_to_json(p)::text, null
     from public.purchases p where p.user_id = p_user order by p.created_at, p.id)
  union all select ']', null

  union all select ',"payment_events":[', null
  union all
  (select json_build_object('id', e.id, 'purchase_id', e.purchase_id,
                               'order_number', e.order_number, 'txn_id', e.txn_id,
                               'status', e.status, 'source', e.source, 'flagged', e.flagged,
                               'received_at', e.received_at,
                               'payload', e.payload - 'verify_hash')::text, null
     from public.payment_events e join public.purchases p on p.id = e.purchase_id
    where p.user_id = p_user order by e.id)
  union all select ']', null

  union all select ',"data_exports":[', null
  union all
  (select json_build_object('id', x.id, 'status', x.status, 'created_at', x.created_at,
                               'completed_at', x.completed_at, 'expires_at', x.expires_at)::text,
          null
     from public.data_exports x where x.user_id = p_user order by x.created_at, x.id)
  union all select ']', null

  union all select ',"deletion_requests":[', null
  union all
  (select row_to_json(d)::text, null
     from public.deletion_requests d where d.user_id = p_user order by d.requested_at, d.id)
  union all select ']', null

  union all select ',"ip_addresses":[', null
  union all
  (select row_to_json(t)::text, null
     from izgens.export_addresses(p_user) t order by t.stored_in, t.first_seen, t.address)
  union all select ']', null

  union all select '}', null
$$;

-- How many lines export_lines yields for this user (progress: rows_done / rows_total):
-- 24 structural lines (header, 11 sections × opening and closing, the final brace) plus
-- one per data row. A test checks a finished build saw exactly this many.
create or replace function izgens.export_rows(p_user uuid)
returns bigint
language sql stable as $$
  select 24
    + (select count(*) from auth.identities where user_id = p_user)
    + (select count(*) from auth.sessions where user_id = p_user)
    + (select count(*) from auth.audit_log_entries where payload ->> 'actor_id' = p_user::text)
    + (select count(*) from public.credit_ledger where user_id = p_user)
    + (select count(*) from public.generations where user_id = p_user)
    + (select count(*) from public.reference_uploads where user_id = p_user)
    + (select count(*) from public.purchases where user_id = p_user)
    + (select count(*) from public.payment_events e join public.purchases p
                     on p.id = e.purchase_id where p.user_id = p_user)
    + (select count(*) from public.data_exports where user_id = p_user)
    + (select count(*) from public.deletion_requests where user_id = p_user)
    + (select count(*) from izgens.export_addresses(p_user));
$$;

-- Hands one export to exactly one builder until its lease ends: the given one, or the
-- oldest claimable (null id). A builder that died is replaced once its lease ran out; after
-- p_max_attempts the export fails instead of being built forever.
create or replace function izgens.claim_export(
  p_id uuid, p_lease_seconds int default 120, p_max_attempts int default 3
) returns setof public.data_exports
language plpgsql as $$
declare
  v_export public.data_exports;
begin
  select * into v_export from public.data_exports
   where status in ('pending', 'building') and (p_id is null or id = p_id)
     and (lease_until is null or lease_until < now())
   order by created_at
   limit 1
   for update skip locked;
  if not found then
    return;
  end if;
  if v_export.attempts >= p_max_attempts then
    update public.data_exports
       set status = 'failed', error = 'gave_up', lease_until = null, completed_at = now()
     where id = v_export.id;
    return;
  end if;
  return query
    update public.data_exports
       set status = 'building', attempts = attempts + 1,
           started_at = coalesce(started_at, now()), rows_done = 0,
           rows_total = izgens.export_rows(v_export.user_id),
           lease_until = now() + make_interval(secs => p_lease_seconds)
     where id = v_export.id
    returning *;
end $$;

-- The builder's heartbeat: progress, and a longer lease. False when the export is no longer
-- this build's to finish (it was claimed again after a stall, or expired).
create or replace function izgens.export_progress(
  p_id uuid, p_rows_done bigint, p_bytes bigint, p_lease_seconds int default 120
) returns boolean
language sql as $$
  with moved as (
    update public.data_exports
       set rows_done = p_rows_done, bytes = p_bytes,
           lease_until = now() + make_interval(secs => p_lease_seconds)
     where id = p_id and status = 'building'
    returning 1
  )
  select exists (select 1 from moved);
$$;

create or replace function izgens.finish_export(
  p_id uuid, p_key text, p_bytes bigint, p_ttl_hours int, p_rows bigint
) returns public.data_exports
language sql as $$
  update public.data_exports
     set status = 'ready', object_key = p_key, bytes = p_bytes, lease_until = null,
         rows_done = p_rows, completed_at = now(),
         expires_at = now() + make_interval(hours => p_ttl_hours)
   where id = p_id and status = 'building'
  returning *;
$$;

create or replace function izgens.fail_export(p_id uuid, p_error text)
returns void
language sql as $$
  update public.data_exports
     set status = 'failed', error = left(p_error, 500), lease_until = null, completed_at = now()
   where id = p_id and status = 'building';
$$;

-- Ready exports past their expiry, claimed for deletion of their object.
create or replace function izgens.expire_exports(p_limit int)
returns setof public.data_exports
language sql as $$
  update public.data_exports e
     set status = 'expired'
   where e.id in (
     select id from public.data_exports
      where status = 'ready' and expires_at < now()
      order by expires_at
      limit p_limit
      for update skip locked
   )
  returning e.*;
$$;

-- ---------------------------------------------------------------------------------------
-- Account deletion

-- Schedules the purge after the grace period (never later than 30 days after the request).
-- Asking again while one is scheduled returns that one.
create or replace function izgens.request_deletion(p_user uuid, p_grace_hours int)
returns public.deletion_requests
language plpgsql as $$
declare
  v_req public.deletion_requests;
begin
  perform 1 from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  select * into v_req from public.deletion_requests
   where user_id = p_user and status in ('scheduled', 'purging');
  if found then
    return v_req;
  end if;
  insert into public.deletion_requests (user_id, scheduled_for)
  values (p_user, now() + make_interval(hours => least(greatest(p_grace_hours, 0), 29 * 24)))
  returning * into v_req;
  return v_req;
end $$;

-- Cancels a scheduled deletion during its grace period; a purge already under way cannot
-- be. The caller is checked first (a purged user's request is not "not found").
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

-- Due requests (or purges that died halfway), each to one purger until its lease ends.
create or replace function izgens.claim_purges(p_limit int, p_lease_seconds int default 900)
returns setof public.deletion_requests
language sql as $$
  update public.deletion_requests d
     set status = 'purging',
         purge_started_at = coalesce(d.purge_started_at, now()),
         purge_lease_until = now() + make_interval(secs => p_lease_seconds)
   where d.id in (
     select id from public.deletion_requests
      where (status = 'scheduled' and scheduled_for <= now())
         or (status = 'purging' and purge_lease_until < now())
      order by scheduled_for
      limit p_limit
      for update skip locked
   )
  returning d.*;
$$;

-- Keeps payment records for the legal retention period with nothing that points at the
-- person: no user id, no IP; raw events keep only Plisio's own fields (never an email).
create or replace function izgens.anonymise_payments(p_user uuid)
returns int
language plpgsql as $$
declare
  v_count int;
begin
  update public.payment_events e
     set payload = e.payload - 'email' - 'customer_email' - 'ip'
    from public.purchases p
   where e.purchase_id = p.id and p.user_id = p_user;
  update public.purchases
     set user_id = null, client_ip = null, idempotency_key = null, anonymized_at = now(),
         updated_at = now()
   where user_id = p_user;
  get diagnostics v_count = row_count;
  return v_count;
end $$;

-- Rows the auth cascade cannot reach (rate-limit windows keyed by the user id).
create or replace function izgens.forget_user_rows(p_user uuid)
returns void
language sql as $$
  delete from public.rate_limits where bucket like ('%:user:' || p_user);
$$;

-- The last step of a purge on plain Postgres (dev, tests): deleting the auth user cascades
-- to the profile and every row that references it. On Supabase the Auth Admin API does
-- the same (and also ends the user's sessions).
create or replace function izgens.delete_auth_user(p_user uuid)
returns void
language sql as $$
  delete from auth.users where id = p_user;
$$;

-- ---------------------------------------------------------------------------------------
-- Retention

-- Reference uploads past their retention, claimed for deletion of object and row.
create or replace function izgens.claim_expired_references(p_limit int)
returns setof public.reference_uploads
language sql as $$
  select * from public.reference_uploads
   where expires_at < now()
   order by expires_at
   limit p_limit
   for update skip locked;
$$;

-- Reference uploads whose objects are gone: the rows go too (`references` job, deletion).
create or replace function izgens.drop_reference_rows(p_keys text[])
returns int
language plpgsql as $$
declare
  v_count int;
begin
  delete from public.reference_uploads where key = any (p_keys);
  get diagnostics v_count = row_count;
  return v_count;
end $$;

create or replace function izgens.delete_old_payments(p_years int, p_limit int)
returns int
language plpgsql as $$
declare
  v_events int;
  v_purchases int;
begin
  delete from public.payment_events
   where id in (select id from public.payment_events
                 where received_at < now() - make_interval(years => p_years)
                 limit p_limit);
  get diagnostics v_events = row_count;
  delete from public.purchases
   where id in (select id from public.purchases p
                 where p.created_at < now() - make_interval(years => p_years)
                   and not exists (select 1 from public.payment_events e where e.purchase_id = p.id)
                 limit p_limit);
  get diagnostics v_purchases = row_count;
  return v_events + v_purchases;
end $$;

create or replace function izgens.delete_old_rate_limits(p_older_than_hours int)
returns int
language plpgsql as $$
declare
  v_count int;
begin
  delete from public.rate_limits
   where window_start < now() - make_interval(hours => p_older_than_hours);
  get diagnostics v_count = row_count;
  return v_count;
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
