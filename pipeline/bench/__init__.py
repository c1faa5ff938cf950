"""The `bench` collection: accuracy and speed figures printed for people, never asserted in tests
and never part of a run. Each task has its module: `lfw-pairs` (verification accuracy), `align`
(the detectors on known answers), `embed` (embedding speed against bare loops and the roofline),
`heads` (batched against one-at-a-time head training), `identify` (a group photo against a large
gallery, cold and warm) and `ablation` (one full run per change of a profile). Their helpers in
shared/ are shared/bench/."""
from invoke import Collection

from pipeline.bench import ablation, align, embed, heads, identify, lfw_pairs

collection = Collection("bench", lfw_pairs.lfw_pairs, align.align, embed.embed, heads.heads, identify.identify,
                        ablation.ablation)
