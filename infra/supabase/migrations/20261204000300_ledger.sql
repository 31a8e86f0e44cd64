-- The credit ledger: the only code that changes a balance, the operator's grants and
-- debits, the books' check, and the user's own history.

-- Locks the profile row, so all money movements of one user are serialised; a replayed
-- (reason, ref) returns the original entry unchanged, a (reason, ref) reused with other
-- values is a conflict.
create or replace function izgens.apply_ledger(
  p_user uuid, p_delta bigint, p_reason text, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
declare
  v_balance bigint;
  v_entry public.credit_ledger;
begin
  select balance into v_balance from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  select * into v_entry from public.credit_ledger where reason = p_reason and ref = p_ref;
  if found then
    if v_entry.user_id <> p_user or v_entry.delta <> p_delta then
      raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
        detail = format('ledger entry %s/%s exists with other values', p_reason, p_ref);
    end if;
    return v_entry;
  end if;
  if v_balance + p_delta < 0 then
    raise exception using errcode = 'IZ001', message = 'insufficient_credits',
      detail = json_build_object('balance', v_balance, 'required', -p_delta)::text;
  end if;
  update public.profiles set balance = balance + p_delta, updated_at = now()
   where user_id = p_user
  returning balance into v_balance;
  insert into public.credit_ledger (user_id, delta, balance_after, reason, ref, note)
  values (p_user, p_delta, v_balance, p_reason, p_ref, p_note)
  returning * into v_entry;
  return v_entry;
end $$;

create or replace function izgens.grant_credits(
  p_user uuid, p_credits bigint, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
begin
  if p_credits is null or p_credits <= 0 then
    raise exception using errcode = 'IZ009', message = 'invalid_argument', detail = 'credits must be positive';
  end if;
  return izgens.apply_ledger(p_user, p_credits, 'grant', p_ref, p_note);
end $$;

create or replace function izgens.debit_credits(
  p_user uuid, p_credits bigint, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
begin
  if p_credits is null or p_credits <= 0 then
    raise exception using errcode = 'IZ009', message = 'invalid_argument', detail = 'credits must be positive';
  end if;
  return izgens.apply_ledger(p_user, -p_credits, 'operator_debit', p_ref, p_note);
end $$;

-- Every profile whose balance is not the sum of its ledger, or whose newest entry's
-- balance_after disagrees with the balance. Empty means the books are right (the tests'
-- `db` fixture checks it after every test).
create or replace function izgens.ledger_mismatches()
returns table (user_id uuid, balance bigint, ledger_sum bigint, last_balance_after bigint)
language sql stable as $$
  select p.user_id, p.balance, coalesce(s.total, 0)::bigint, s.last_after
    from public.profiles p
    left join lateral (
      select sum(l.delta) as total,
             (select l2.balance_after from public.credit_ledger l2
               where l2.user_id = p.user_id order by l2.id desc limit 1) as last_after
        from public.credit_ledger l where l.user_id = p.user_id
    ) s on true
   where p.balance <> coalesce(s.total, 0)
      or (s.last_after is not null and s.last_after <> p.balance)
$$;

-- GET /me/ledger: the caller's entries, newest first, before an id.
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

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
