-- Launch prices. Provider prices are USD per 1M output tokens (../shared/reference
-- byteplus-seedance.md §6.2, "no video input" column: we always charge the higher tier).
-- Operators change these rows (or the credit price and margin) with an UPDATE; see
-- docs/operations.md.

insert into public.pricing (id, usd_per_credit, margin) values (true, 0.01, 1.5)
on conflict (id) do nothing;

insert into public.model_prices (model, resolution, generate_audio, usd_per_mtok)
select m.model, r.resolution, a.audio, m.price
  from (values
    ('seedance-1-0-pro-fast-251015', array['480p', '720p', '1080p'], false, 1.0, 1.0),
    ('seedance-1-0-pro-250528', array['480p', '720p', '1080p'], false, 2.5, 2.5),
    ('dreamina-seedance-2-0-fast-260128', array['480p', '720p'], true, 5.6, 5.6),
    ('dreamina-seedance-2-0-mini-260615', array['480p', '720p'], true, 3.5, 3.5),
    ('dreamina-seedance-2-5-260628', array['480p', '720p'], true, 10.7, 10.7)
  ) as m0 (model, resolutions, has_audio, silent, voiced)
  cross join lateral unnest(m0.resolutions) as r (resolution)
  cross join lateral (values (false), (true)) as a (audio)
  cross join lateral (select m0.model, case when a.audio then m0.voiced else m0.silent end as price) m
 where a.audio = false or m0.has_audio
on conflict do nothing;

insert into public.model_prices (model, resolution, generate_audio, usd_per_mtok) values
  ('seedance-1-5-pro-251215', '480p', false, 1.2), ('seedance-1-5-pro-251215', '480p', true, 2.4),
  ('seedance-1-5-pro-251215', '720p', false, 1.2), ('seedance-1-5-pro-251215', '720p', true, 2.4),
  ('seedance-1-5-pro-251215', '1080p', false, 1.2), ('seedance-1-5-pro-251215', '1080p', true, 2.4),
  ('dreamina-seedance-2-0-260128', '480p', false, 7.0), ('dreamina-seedance-2-0-260128', '480p', true, 7.0),
  ('dreamina-seedance-2-0-260128', '720p', false, 7.0), ('dreamina-seedance-2-0-260128', '720p', true, 7.0),
  ('dreamina-seedance-2-0-260128', '1080p', false, 7.7), ('dreamina-seedance-2-0-260128', '1080p', true, 7.7),
  ('dreamina-seedance-2-0-260128', '4k', false, 4.0), ('dreamina-seedance-2-0-260128', '4k', true, 4.0)
on conflict do nothing;

insert into public.credit_packs (id, credits, price, currency, sort_order) values
  ('starter', 500, 5.00, 'USD', 10),
  ('creator', 1100, 10.00, 'USD', 20),
  ('studio', 6000, 50.00, 'USD', 30)
on conflict (id) do nothing;
