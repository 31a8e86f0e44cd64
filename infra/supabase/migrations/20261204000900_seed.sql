-- Launch prices, the video-input floors and the credit packs. Provider prices are USD per
-- 1M output tokens (reference/byteplus-seedance.md §6.2), both tiers: "no video input" and,
-- for 2.x, "with video input". Operators change these rows (or the credit price and margin)
-- with an UPDATE, or a new provider price version with an INSERT; see docs/operations.md.

insert into public.pricing (id, usd_per_credit, margin) values (true, 0.01, 1.5);

-- a line per model and resolution: the price without audio, with audio (null: the model has
-- no audio) and with video input, either audio (null: no such tier); a row per tier each
insert into public.provider_prices (model, resolution, generate_audio, video_input, usd_per_mtok,
                                    effective_from, source)
select p.model, p.resolution, a.audio, v.video_input,
       case when v.video_input then p.with_video_input when a.audio then p.voiced else p.silent end,
       '2026-11-25 00:00:00+00',
       case when v.video_input
            then 'launch list price, with video input (byteplus-seedance.md §6.2)'
            else 'launch list price, no video input (byteplus-seedance.md §6.2)' end
  from (values
    ('seedance-1-0-pro-fast-251015', '480p', 1.0, null, null),
    ('seedance-1-0-pro-fast-251015', '720p', 1.0, null, null),
    ('seedance-1-0-pro-fast-251015', '1080p', 1.0, null, null),
    ('seedance-1-0-pro-250528', '480p', 2.5, null, null),
    ('seedance-1-0-pro-250528', '720p', 2.5, null, null),
    ('seedance-1-0-pro-250528', '1080p', 2.5, null, null),
    ('seedance-1-5-pro-251215', '480p', 1.2, 2.4, null),
    ('seedance-1-5-pro-251215', '720p', 1.2, 2.4, null),
    ('seedance-1-5-pro-251215', '1080p', 1.2, 2.4, null),
    ('dreamina-seedance-2-0-260128', '480p', 7.0, 7.0, 4.3),
    ('dreamina-seedance-2-0-260128', '720p', 7.0, 7.0, 4.3),
    ('dreamina-seedance-2-0-260128', '1080p', 7.7, 7.7, 4.7),
    ('dreamina-seedance-2-0-260128', '4k', 4.0, 4.0, 2.4),
    ('dreamina-seedance-2-0-fast-260128', '480p', 5.6, 5.6, 3.3),
    ('dreamina-seedance-2-0-fast-260128', '720p', 5.6, 5.6, 3.3),
    ('dreamina-seedance-2-0-mini-260615', '480p', 3.5, 3.5, 2.1),
    ('dreamina-seedance-2-0-mini-260615', '720p', 3.5, 3.5, 2.1),
    ('dreamina-seedance-2-5-260628', '480p', 10.7, 10.7, 6.4),
    ('dreamina-seedance-2-5-260628', '720p', 10.7, 10.7, 6.4)
  ) as p (model, resolution, silent, voiced, with_video_input)
  cross join (values (false), (true)) as a (audio)
  cross join (values (false), (true)) as v (video_input)
 where (p.voiced is not null or not a.audio) and (p.with_video_input is not null or not v.video_input);

insert into public.video_input_floors (model, output_multiple, note)
select model, 2.1, 'UNCONFIRMED provider minimum for video input; see docs/generation.md'
  from (values ('dreamina-seedance-2-5-260628'), ('dreamina-seedance-2-0-260128'),
               ('dreamina-seedance-2-0-fast-260128'), ('dreamina-seedance-2-0-mini-260615')) m (model);

insert into public.credit_packs (id, credits, price, currency, sort_order) values
  ('starter', 500, 5.00, 'USD', 10),
  ('creator', 1100, 10.00, 'USD', 20),
  ('studio', 6000, 50.00, 'USD', 30);
