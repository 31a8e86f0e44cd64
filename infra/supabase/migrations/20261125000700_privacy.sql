-- Privacy: data exports, account deletion and purge, retention. The promises these keep
-- are listed in docs/privacy.md.

alter table public.data_exports add column lease_until timestamptz;
alter table public.deletion_requests add column purge_lease_until timestamptz;
create index data_exports_pending on public.data_exports (created_at) where status = 'pending';

-- ---------------------------------------------------------------------------------------
-- Exports

create or replace function izgens.request_export(p_user uuid, p_limit int, p_window_seconds int)
returns public.data_exports
language plpgsql as $$
declare
  v_export public.data_exports;
begin
  perform 1 from public.profiles where user_id = p_user;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  perform izgens.require_rate_limit('export:user:' || p_user, p_limit, p_window_seconds);
  insert into public.data_exports (user_id) values (p_user) returning * into v_export;
  return v_export;
end $$;

-- Hands a pending export to exactly one builder until its lease ends (a builder that died
-- is replaced). Null id: the oldest claimable one.
create or replace function izgens.claim_export(p_id uuid, p_lease_seconds int default 600)
returns setof public.data_exports
language sql as $$
  update public.data_exports
     set lease_until = now() + make_interval(secs => p_lease_seconds)
   where id = (
     select id from public.data_exports
      where status = 'pending' and (p_id is null or id = p_id)
        and (lease_until is null or lease_until < now())
      order by created_at
      limit 1
      for update skip locked
   )
  returning *;
$$;

create or replace function izgens.finish_export(
  p_id uuid, p_key text, p_bytes bigint, p_ttl_hours int
) returns public.data_exports
language sql as $$
  update public.data_exports
     set status = 'ready', object_key = p_key, bytes = p_bytes, lease_until = null,
         completed_at = now(), expires_at = now() + make_interval(hours => p_ttl_hours)
   where id = p_id and status = 'pending'
  returning *;
$$;

create or replace function izgens.fail_export(p_id uuid, p_error text)
returns void
language sql as $$
  update public.data_exports
     set status = 'failed', error = left(p_error, 500), lease_until = null, completed_at = now()
   where id = p_id and status = 'pending';
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

-- Cancels a scheduled deletion during its grace period; a purge already under way cannot be.
create or replace function izgens.cancel_deletion(p_user uuid)
returns public.deletion_requests
language plpgsql as $$
declare
  v_req public.deletion_requests;
begin
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

-- ---------------------------------------------------------------------------------------
-- Rectification

create or replace function izgens.update_profile(p_user uuid, p_fields jsonb)
returns jsonb
language plpgsql as $$
begin
  perform izgens.ensure_profile(p_user);
  update public.profiles
     set display_name = case when p_fields ? 'display_name'
                             then nullif(btrim(p_fields ->> 'display_name'), '')
                             else display_name end,
         updated_at = now()
   where user_id = p_user;
  return izgens.account(p_user);
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
