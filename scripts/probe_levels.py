"""Probe: MobileNetV2 with every point at one uniform precision level (``precision_levels``),
all 52 points at once, on real photos; the exploration behind ``--allocation joint``'s
default ``--keep 0``.

    PYTHONPATH=. python scripts/probe_levels.py KEEPS LEVELS     # e.g. 0,0.2 4,6,8,10

Calibration: 12 crops of the 6 bundled calibration photos (4000 pixels per point); evaluation:
34 crops of the 17 other real photos. Prints per (keep, level) the fraction of components
kept, the coded bits per value on calibration pixels (``level_bits``) and (mean KL,
confident top-1 agreement) of the float model of the quantized projections (``Projector``).
Caches its calibration in build/explore/prep2.pkl.
"""
import time, sys, os, pickle, numpy as np, torch, dataclasses
torch.set_num_threads(1)
from golden.nets.images import bundled_photos, split_photos, make_batch, extra_photos
from golden.nets.mobilenet import load_mobilenet_v2
from golden.nets.capture import activation_points, capture, sample_pixels, replaced
from golden.projection.pca import pca_fit
from golden.projection.learning import quant_format, Projector
from golden.calibration.allocation import precision_levels, PrecisionLevel
model=load_mobilenet_v2()
calib, ev = split_photos(bundled_photos())
pts=activation_points(model)
os.makedirs('build/explore', exist_ok=True); cache='build/explore/prep2.pkl'
if os.path.exists(cache):
    pcas,q,sizes,smp=pickle.load(open(cache,'rb'))
else:
    x=make_batch(calib, 12, seed=0)
    smp={p:v.astype(np.float64)
         for p,v in sample_pixels(model,x,pts,max_pixels=4000,seed=0).items()}
    sizes={p:int(np.prod(v.shape[1:])) for p,v in capture(model,x[:1],pts).items()}
    pcas={p:pca_fit(smp[p]) for p in pts}
    q={p:quant_format(pcas[p],smp[p]) for p in pts}
    pickle.dump((pcas,q,sizes,smp),open(cache,'wb'))
evp = ev + extra_photos()
xe = make_batch(evp, 2*len(evp), seed=1)
def run(fns):
    with torch.no_grad(), replaced(model, fns):
        return torch.cat([model(xe[i:i+17]).float()
                          for i in range(0,len(xe),17)]).double().log_softmax(1)
base=run({})
conf = base.exp().max(1).values >= 0.5
def stats(lv, only=None):
    fns={p:Projector(pcas[p].truncate(l.k),
                     quant=dataclasses.replace(q[p],steps=l.steps,widths=l.widths))
         for p,l in lv.items() if only is None or p in only}
    lq=run(fns)
    kl=float((base.exp()*(base-lq)).sum(1).mean())
    agree=(lq.argmax(1)==base.argmax(1))
    return round(kl,3), round(float(agree[conf].float().mean()),3)
relu6=[p for p in pts if p.endswith('.2') or p=='features.0.2' or 'conv.0' in p or 'conv.1' in p]
blocks=[p for p in pts if p not in relu6]
print(len(relu6), len(blocks), blocks[:3])
for keep in [float(a) for a in sys.argv[1].split(',')]:
    for lev in [int(a) for a in sys.argv[2].split(',')]:
        ch={p:precision_levels(pcas[p].eigenvalues,q[p].steps,levels=lev+1,keep=keep)[lev]
            for p in pts}
        kfrac=sum(sizes[p]*ch[p].k/pcas[p].channels for p in pts)/sum(sizes.values())
        from golden.calibration.allocation import level_bits
        bpv=0
        for p in pts:
            x=smp[p]; f=q[p]
            xq=np.clip(np.rint(x/f.x_scale),f.x_lo,f.x_hi)*f.x_scale
            bpv+=level_bits([ch[p]], pcas[p].project(xq), sizes[p])[0]
        bpv/=sum(sizes.values())
        print(f"keep {keep} level {lev}: k/C {kfrac:.3f} bpv {bpv:.3f} all {stats(ch)}", flush=True)
