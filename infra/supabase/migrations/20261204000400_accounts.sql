-- The account as the user sees and changes it (GET /me, age confirmation, rectification),
-- one round trip each.

-- The account as GET /me shows it; creates the profile on first sight. Null when the auth
-- user is gone (purged), which the caller answers with 401.
create or replace function izgens.account(p_user uuid)
returns jsonb
language plpgsql as $$
declare
  v_p public.profiles;
begin
  select * into v_p from izgens.ensure_profile(p_user);
  if v_p.user_id is null then
    return null;
  end if;
  return jsonb_build_object(
    'user_id', v_p.user_id,
    'email', (select email from auth.users where id = p_user),
    'balance', v_p.balance,
    'age_confirmed', v_p.age_confirmed_at is not null,
    'age_confirmed_at', v_p.age_confirmed_at,
    'display_name', v_p.display_name,
    'blocked', v_p.blocked_at is not null,
    'deletion_scheduled_for', (
      select scheduled_for from public.deletion_requests
       where user_id = p_user and status in ('scheduled', 'purging')
    )
  );
end $$;

create or replace function izgens.confirm_age(p_user uuid)
returns jsonb
language plpgsql as $$
begin
  perform izgens.ensure_profile(p_user);
  update public.profiles
     set age_confirmed_at = coalesce(age_confirmed_at, now()), updated_at = now()
   where user_id = p_user;
  return izgens.account(p_user);
end $$;

-- Rectification: the fields a user may change about themselves.
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
