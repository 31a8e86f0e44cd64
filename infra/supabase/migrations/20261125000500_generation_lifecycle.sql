-- The rest of the generation lifecycle: uploads, deletion, provider checks.

-- Account gates shared by every paid action (generate, upload, checkout): raises the
-- same errors start_generation raises, with the profile row locked by the caller.
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

-- Records a reference upload the caller is about to receive a presigned POST for:
-- gates, rate limit and the row in one round trip.
create or replace function izgens.register_upload(
  p_user uuid, p_key text, p_kind text, p_content_type text, p_bytes bigint,
  p_retention_hours int, p_limit int, p_window_seconds int
) returns public.reference_uploads
language plpgsql as $$
declare
  v_profile public.profiles;
  v_upload public.reference_uploads;
begin
  select * into v_profile from public.profiles where user_id = p_user;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  perform izgens.require_account_open(v_profile);
  perform izgens.require_rate_limit('upload:user:' || p_user, p_limit, p_window_seconds);
  insert into public.reference_uploads (key, user_id, kind, content_type, bytes, expires_at)
  values (p_key, p_user, p_kind, p_content_type, p_bytes,
          now() + make_interval(hours => p_retention_hours))
  returning * into v_upload;
  return v_upload;
end $$;

-- Soft-deletes the caller's generation and answers what the caller must still do:
-- the row as it was (status, video_key, provider_task_id). Another user's id is not found.
create or replace function izgens.delete_generation(p_user uuid, p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations;
begin
  select * into v_gen from public.generations
   where id = p_id and user_id = p_user and deleted_at is null
   for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'generation';
  end if;
  update public.generations set deleted_at = now(), updated_at = now() where id = p_id;
  return v_gen;
end $$;

-- Notes that the provider was asked about this generation (the status read refreshes only
-- when this is older than a few seconds).
create or replace function izgens.touch_generation(p_id uuid)
returns void
language sql as $$
  update public.generations set checked_at = now() where id = p_id;
$$;

-- Generations the reconciliation job must look at, oldest first, without blocking other
-- workers: in flight and not checked recently, or stuck in storing past the lease.
create or replace function izgens.stuck_generations(p_older_than_seconds int, p_limit int)
returns setof public.generations
language sql stable as $$
  select * from public.generations
   where status in ('submitted', 'running', 'storing', 'queued')
     and coalesce(checked_at, updated_at) < now() - make_interval(secs => p_older_than_seconds)
     and (status <> 'storing' or storing_lease_until < now())
     and (status <> 'queued' or submit_lease_until < now())
   order by updated_at
   limit p_limit;
$$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
