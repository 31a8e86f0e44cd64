-- Everything the privacy policy promises (issue 14):
--   1. a deleted generation forgets what the person wrote, at once and for good;
--   2. its reference uploads used nowhere else go with it;
--   3. the tables a frontend watches are in Supabase Realtime's publication.

-- ---------------------------------------------------------------------------------------
-- 1. Deleting a generation erases its content
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

alter table public.generations alter column prompt drop not null;
alter table public.generations alter column ratio drop not null;
alter table public.generations add constraint generations_content_until_deleted check (
  deleted_at is not null or (prompt is not null and ratio is not null)
);
alter table public.generations add constraint generations_deleted_forgotten check (
  deleted_at is null
  or (prompt is null and ratio is null and seed is null and camera_fixed is null
      and reference_keys = '{}' and error_message is null and request_hash = '')
) not valid;

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

-- generations deleted before this migration forget too
update public.generations set deleted_at = deleted_at where deleted_at is not null;
alter table public.generations validate constraint generations_deleted_forgotten;

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

-- ---------------------------------------------------------------------------------------
-- 3. Live status through Supabase Realtime
--
-- A frontend subscribes with supabase-js to changes of `generations` and `profiles`
-- (docs/realtime.md); Realtime checks every change against the subscriber's RLS policies
-- (owner only, live generations only), so each user receives only their own rows.
-- Supabase creates the publication itself; plain Postgres (tests, dev) gets it here.

do $$
declare
  v_table text;
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  foreach v_table in array array['generations', 'profiles'] loop
    if not exists (
      select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = v_table
    ) then
      execute format('alter publication supabase_realtime add table public.%I', v_table);
    end if;
  end loop;
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
