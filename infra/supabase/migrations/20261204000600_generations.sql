-- A generation's life, each step one call: admission (idempotency, gates, rate limits,
-- price, debit, the queued row), submission to the provider, its progress, the copy of the
-- video, the end (completed, or failed or canceled and refunded exactly once), the reads
-- of the owner, reference uploads, and deletion (docs/generation.md).
--
--   queued ─mark_submitted─▶ submitted ─mark_running─▶ running ─claim_storing─▶ storing
--     ─complete_generation─▶ completed (claim_storing also straight from submitted);
--   queued or submitted ─cancel_generation─▶ canceled, anything unfinished
--     ─fail_generation─▶ failed: both refunded, exactly once.
--
-- Never submitted twice: a queued generation is one of two kinds, told apart by
-- `submit_attempted_at`. Never sent to the provider (waiting for capacity): the dispatcher
-- may submit it. Possibly sent (a create timed out or failed ambiguously, or the process
-- died between the debit and the create): only reconciliation may end it, by finding its
-- task in the provider's list or, after a window measured from the last attempt, failing
-- and refunding it. A claim marks its rows attempted, so the dispatcher claims one at a
-- time (`claim_submissions(1)`): only the generation actually being sent is marked.

create or replace function izgens._lock_generation(p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations;
begin
  select * into v_gen from public.generations where id = p_id for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'generation';
  end if;
  return v_gen;
end $$;

-- ---------------------------------------------------------------------------------------
-- Admission

-- The whole admission of a generation in one call: idempotency, gates, rate limits (the
-- per-address one by izgens.ip_bucket), price (with the inputs), debit and the queued row
-- with what was priced. Answers {"created", "submit", "generation"}: `submit` is true when
-- this caller holds the submission lease (nothing older waits for provider capacity), so
-- arrival order is kept when the provider is saturated.
create or replace function izgens.start_generation(
  p_user uuid,
  p_idempotency_key text,
  p_request_hash text,
  p_spec jsonb,
  p_output_tokens bigint,
  p_input_tokens bigint,
  p_client_ip inet,
  p_user_limit int,
  p_ip_limit int,
  p_window_seconds int,
  p_submit_lease_seconds int default 60
) returns jsonb
language plpgsql as $$
declare
  v_profile public.profiles;
  v_gen public.generations;
  v_cost bigint;
  v_backlog boolean;
begin
  select * into v_profile from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;

  -- after the lock, so concurrent requests with one key see each other's row
  select * into v_gen from public.generations
   where user_id = p_user and idempotency_key = p_idempotency_key;
  if found then
    if v_gen.request_hash <> p_request_hash then
      raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
        detail = 'this Idempotency-Key was used with another request body';
    end if;
    return jsonb_build_object('created', false, 'submit', false, 'generation', to_jsonb(v_gen));
  end if;

  perform izgens.require_account_open(v_profile);

  perform izgens.require_rate_limit('generate:user:' || p_user, p_user_limit, p_window_seconds);
  perform izgens.require_ip_rate_limit('generate', p_client_ip, p_ip_limit, p_window_seconds);

  v_cost := izgens.price_credits(p_spec ->> 'model', p_spec ->> 'resolution',
                                 (p_spec ->> 'generate_audio')::boolean, p_output_tokens,
                                 p_input_tokens);
  if v_profile.balance < v_cost then
    raise exception using errcode = 'IZ001', message = 'insufficient_credits',
      detail = json_build_object('balance', v_profile.balance, 'required', v_cost)::text;
  end if;

  -- generations never sent to the provider (deferred for lack of capacity) wait with no
  -- attempt; while any wait, a new one queues behind them (index generations_waiting)
  v_backlog := exists (
    select 1 from public.generations where status = 'queued' and submit_attempted_at is null
  );

  insert into public.generations (
    user_id, prompt, model, resolution, ratio, duration, seed, camera_fixed, generate_audio,
    reference_keys, reference_mode, cost, idempotency_key, request_hash, client_ip, recreated_from,
    input_video_ms, estimated_tokens,
    submit_lease_until, submit_attempted_at, submit_attempts
  ) values (
    p_user,
    p_spec ->> 'prompt',
    p_spec ->> 'model',
    p_spec ->> 'resolution',
    p_spec ->> 'ratio',
    (p_spec ->> 'duration')::int,
    (p_spec ->> 'seed')::bigint,
    (p_spec ->> 'camera_fixed')::boolean,
    (p_spec ->> 'generate_audio')::boolean,
    coalesce((select array_agg(k) from jsonb_array_elements_text(p_spec -> 'reference_keys') k), '{}'),
    p_spec ->> 'mode',
    v_cost,
    p_idempotency_key,
    p_request_hash,
    p_client_ip,
    (p_spec ->> 'recreated_from')::uuid,
    coalesce((p_spec ->> 'input_video_ms')::int, 0),
    izgens.billable_tokens(p_spec ->> 'model', p_output_tokens, p_input_tokens),
    case when v_backlog then null else now() + make_interval(secs => p_submit_lease_seconds) end,
    case when v_backlog then null else now() end,
    case when v_backlog then 0 else 1 end
  ) returning * into v_gen;

  perform izgens.apply_ledger(p_user, -v_cost, 'generation', v_gen.id::text);

  return jsonb_build_object('created', true, 'submit', not v_backlog, 'generation', to_jsonb(v_gen));
end $$;

-- ---------------------------------------------------------------------------------------
-- Submission

-- Hands up to p_limit waiting generations (never sent to the provider), oldest first, each
-- to exactly one caller, marked attempted: from then on only `mark_submitted`,
-- `defer_submission` or reconciliation move them.
--
-- With p_provider_queue_cap, no more than fill the provider's queue as we know it: the
-- generations it holds queued (`submitted`) and those on their way there (claimed, not yet
-- answered). A create into a full queue is refused (429 QuotaExceeded) and still counts
-- against the provider's per-minute limit, so probing a full queue slows the drain.
-- Concurrent claimers may overshoot by a few: those are refused and wait again, as
-- without the cap.
create or replace function izgens.claim_submissions(
  p_limit int, p_lease_seconds int default 60, p_provider_queue_cap int default null
)
returns setof public.generations
language sql as $$
  with room as (
    select case when p_provider_queue_cap is null then p_limit
                else least(p_limit, greatest(0, p_provider_queue_cap - (
                  select count(*) from public.generations
                   where status = 'submitted'
                      or (status = 'queued' and submit_attempted_at is not null
                          and submit_lease_until > now())
                )))::int
           end as n
  ),
  claimed as (
    update public.generations g
       set submit_lease_until = now() + make_interval(secs => p_lease_seconds),
           submit_attempted_at = now(),
           submit_attempts = g.submit_attempts + 1,
           updated_at = now()
     where g.id in (
       select id from public.generations
        where status = 'queued' and submit_attempted_at is null
        order by created_at, id
        limit (select n from room)
        for update skip locked
     )
    returning g.*
  )
  select * from claimed order by created_at, id;
$$;

-- The provider refused with 429 (no task was created): the generation waits again, in its
-- place by arrival, for the dispatcher.
create or replace function izgens.defer_submission(p_id uuid)
returns setof public.generations
language sql as $$
  update public.generations
     set submit_lease_until = null, submit_attempted_at = null, updated_at = now()
   where id = p_id and status = 'queued'
  returning *;
$$;

create or replace function izgens.mark_submitted(p_id uuid, p_task_id text)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status = 'queued' then
    update public.generations
       set status = 'submitted', provider_task_id = p_task_id, submitted_at = now(),
           submit_lease_until = null, checked_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.provider_task_id = p_task_id then
    return v_gen;  -- a replay: already submitted (or further) with this very task
  end if;
  perform izgens._invalid_transition(v_gen.status, 'submitted');
  return null;
end $$;

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

-- ---------------------------------------------------------------------------------------
-- Progress and the end

-- On an already running generation it records the check (`checked_at`), so a status read
-- of a running generation does not ask the provider on every request.
create or replace function izgens.mark_running(p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('submitted', 'running') then
    update public.generations
       set status = 'running', checked_at = now(),
           updated_at = case when v_gen.status = 'submitted' then now() else updated_at end
     where id = p_id returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.status in ('storing', 'completed') then
    return v_gen;  -- late or duplicate news: never move backwards
  end if;
  perform izgens._invalid_transition(v_gen.status, 'running');
  return null;
end $$;

-- Exactly one caller wins the right to copy the video; a winner that died is replaced once
-- its lease has run out. Losers get no row. The provider's bill is recorded here, in the
-- one call that holds the finished task: a generation whose copy then fails (and which is
-- refunded) was still billed, so its cost stays on record for the margin report.
create or replace function izgens.claim_storing(
  p_id uuid, p_provider_tokens bigint default null, p_lease_seconds int default 300
) returns setof public.generations
language sql as $$
  update public.generations g
     set status = 'storing', storing_lease_until = now() + make_interval(secs => p_lease_seconds),
         checked_at = now(), updated_at = now(),
         provider_tokens = coalesce(g.provider_tokens, p_provider_tokens),
         billed_at = coalesce(g.billed_at, case when p_provider_tokens is not null then now() end),
         provider_cost_micro_usd = coalesce(g.provider_cost_micro_usd, (
           select ceil(p_provider_tokens * price.usd_per_mtok)::bigint
             from izgens.provider_price(g.model, g.resolution, g.generate_audio,
                                        g.input_video_ms > 0) price)),
         provider_price_from = coalesce(g.provider_price_from, (
           select price.effective_from
             from izgens.provider_price(g.model, g.resolution, g.generate_audio,
                                        g.input_video_ms > 0) price
            where p_provider_tokens is not null))
   where g.id = p_id
     and (g.status in ('submitted', 'running')
          or (g.status = 'storing' and g.storing_lease_until < now()))
  returning g.*;
$$;

create or replace function izgens.complete_generation(
  p_id uuid, p_video_key text, p_etag text, p_bytes bigint, p_content_type text
) returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status = 'storing' then
    update public.generations
       set status = 'completed', video_key = p_video_key, video_etag = p_etag, bytes = p_bytes,
           content_type = p_content_type, storing_lease_until = null,
           completed_at = now(), finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.status = 'completed' and v_gen.video_key = p_video_key then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'completed');
  return null;
end $$;

-- Fails an unfinished generation and refunds its cost, exactly once.
create or replace function izgens.fail_generation(p_id uuid, p_code text, p_message text)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('queued', 'submitted', 'running', 'storing') then
    update public.generations
       set status = 'failed', error_code = left(p_code, 200), error_message = left(p_message, 1000),
           submit_lease_until = null, storing_lease_until = null,
           finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    perform izgens.apply_ledger(v_gen.user_id, v_gen.cost, 'generation_refund', v_gen.id::text);
    return v_gen;
  end if;
  if v_gen.status = 'failed' then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'failed');
  return null;
end $$;

-- Cancels a generation the provider has not started and refunds it, exactly once.
create or replace function izgens.cancel_generation(p_id uuid, p_reason text default null)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('queued', 'submitted') then
    update public.generations
       set status = 'canceled', error_code = 'canceled', error_message = left(p_reason, 1000),
           submit_lease_until = null, finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    perform izgens.apply_ledger(v_gen.user_id, v_gen.cost, 'generation_refund', v_gen.id::text);
    return v_gen;
  end if;
  if v_gen.status = 'canceled' then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'canceled');
  return null;
end $$;

-- Notes that the provider was asked about this generation (the status read refreshes only
-- when this is older than a few seconds).
create or replace function izgens.touch_generation(p_id uuid)
returns void
language sql as $$
  update public.generations set checked_at = now() where id = p_id;
$$;

-- Generations the reconciliation job must look at, oldest first: in flight and not checked
-- recently; storing past its lease; queued only when a create may have been sent and its
-- lease ran out (waiting ones belong to the dispatcher).
create or replace function izgens.stuck_generations(p_older_than_seconds int, p_limit int)
returns setof public.generations
language sql stable as $$
  select * from public.generations
   where status in ('submitted', 'running', 'storing', 'queued')
     and coalesce(checked_at, updated_at) < now() - make_interval(secs => p_older_than_seconds)
     and (status <> 'storing' or storing_lease_until < now())
     and (status <> 'queued'
          or (submit_attempted_at is not null and coalesce(submit_lease_until, '-infinity') < now()))
   order by updated_at
   limit p_limit;
$$;

-- ---------------------------------------------------------------------------------------
-- The owner's reads

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

-- ---------------------------------------------------------------------------------------
-- References

-- Records a reference upload the caller is about to receive a presigned POST for: gates,
-- the per-user and per-address limits and the row, in one round trip.
create or replace function izgens.register_upload(
  p_user uuid, p_key text, p_kind text, p_content_type text, p_bytes bigint,
  p_retention_hours int, p_limit int, p_window_seconds int,
  p_client_ip inet, p_ip_limit int
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
  perform izgens.require_ip_rate_limit('upload', p_client_ip, p_ip_limit, p_window_seconds);
  insert into public.reference_uploads (key, user_id, kind, content_type, bytes, expires_at)
  values (p_key, p_user, p_kind, p_content_type, p_bytes,
          now() + make_interval(hours => p_retention_hours))
  returning * into v_upload;
  return v_upload;
end $$;

-- The provider downloads a generation's own copies of its references (inputs/…, written
-- by `submit`). Ended generations whose copies are still to be deleted, oldest first. The
-- caller deletes the objects, then `inputs_deleted`: a run that dies in between leaves the
-- rows for the next one (deleting a missing object succeeds).
create or replace function izgens.inputs_to_delete(p_limit int)
returns table (id uuid, user_id uuid, reference_keys text[])
language sql stable as $$
  select g.id, g.user_id, g.reference_keys from public.generations g
   where g.inputs_deleted_at is null and g.reference_keys <> '{}'
     and g.status in ('completed', 'failed', 'canceled')
   order by g.finished_at
   limit p_limit;
$$;

create or replace function izgens.inputs_deleted(p_ids uuid[])
returns int
language sql as $$
  with done as (
    update public.generations set inputs_deleted_at = now()
     where id = any(p_ids) and inputs_deleted_at is null
    returning 1
  )
  select count(*)::int from done;
$$;

-- ---------------------------------------------------------------------------------------
-- Deletion erases a generation's content (docs/privacy.md)
--
-- What stays: the id, the owner, the state, the amounts (cost) and what they were priced
-- on (model, resolution, duration, audio), timestamps, the provider's task id (an
-- in-flight task still has to be followed so its video is discarded and the books stay
-- right), the error code. What goes: the prompt, the ratio, seed and camera choice, the
-- reference keys, the provider's error text (it may quote the prompt) and the request hash
-- (a hash of the prompt). A replay of the deleting request's Idempotency-Key is then a
-- conflict (409), never a second generation.
--
-- The rule is a trigger, so it holds whichever transition touches a deleted row later
-- (a running task that fails writes its error text into a deleted row otherwise).

create or replace function izgens._forget_deleted_generation()
returns trigger
language plpgsql as $$
begin
  new.prompt := null;
  new.ratio := null;
  new.seed := null;
  new.camera_fixed := null;
  new.reference_keys := '{}';
  new.error_message := null;
  new.request_hash := '';
  return new;
end $$;

create trigger generations_forget_deleted
  before update on public.generations
  for each row when (new.deleted_at is not null)
  execute function izgens._forget_deleted_generation();

-- Deletes the caller's generation and answers what the caller must still do:
--   {"generation": the row as it was (status, video_key, provider_task_id),
--    "references": keys of the uploads it used that no other live generation uses}
-- Those uploads are marked deleted and expired in the same transaction: the caller deletes
-- their objects now, and if that fails the `references` retention job does on its next run.
-- A generation never sent to the provider is canceled (and refunded) here, so no
-- dispatcher can pick a deleted one up. Another user's id is not found.
create or replace function izgens.forget_generation(p_user uuid, p_id uuid)
returns jsonb
language plpgsql as $$
declare
  v_gen public.generations;
  v_refs text[];
begin
  select * into v_gen from public.generations
   where id = p_id and user_id = p_user and deleted_at is null
   for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'generation';
  end if;
  update public.generations set deleted_at = now(), updated_at = now() where id = p_id;
  if v_gen.status = 'queued' and v_gen.submit_attempted_at is null then
    perform izgens.cancel_generation(p_id, 'deleted by the user');
  end if;
  with gone as (
    update public.reference_uploads r
       set deleted_at = now(), expires_at = least(r.expires_at, now())
     where r.user_id = p_user and r.key = any (v_gen.reference_keys) and r.deleted_at is null
       and not exists (
         select 1 from public.generations g
          where g.user_id = p_user and g.deleted_at is null and r.key = any (g.reference_keys)
       )
    returning r.key
  )
  select coalesce(array_agg(key), '{}') into v_refs from gone;
  return jsonb_build_object('generation', to_jsonb(v_gen), 'references', to_jsonb(v_refs));
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
