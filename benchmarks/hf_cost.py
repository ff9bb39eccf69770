"""Cost of explaining a DistilBERT-size classifier (6 layers, hidden 768, 12 heads, ff 3072;
random weights: cost does not depend on them) at 128 tokens on this CPU, in one run (``--arch
llama``: a decoder of the same size, LlamaForSequenceClassification with 6 layers, hidden 768,
12 heads of which 4 key/value heads, SwiGLU 2048, byte-level BPE, explained through the
op-level route):

(a) seqshap DeepExplainer against 100 references (the first 100 IMDB training reviews), exact;
(b) the same against 10 summarized references (weighted k-means of those 100);
(c) shap's PartitionExplainer with its Text masker (the model's tokenizer, ``max_evals`` model
    calls per review) on the same model and reviews, if shap is installed;
plus one plain forward pass over the 101 rows (a) runs forward, for scale, and peak RSS.
Reviews are IMDB test reviews long enough to fill the 128 tokens.

    python benchmarks/hf_cost.py --reviews 1 --json benchmarks/hf_cost.json
    python benchmarks/hf_cost.py --arch llama --reviews 1 --json benchmarks/hf_cost_llama.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_build import byte_bpe, classifier, decoder, save, wordpiece

MAXLEN = 128


def build_model(directory: Path, vocab: int, arch: str = "distilbert"):
    import seqshap
    from seqshap.data import load_imdb

    data = load_imdb()
    torch.manual_seed(0)
    if arch == "llama":
        tok = byte_bpe(data["train"].texts[:3000], vocab, MAXLEN)
        save(decoder(tok, hidden=768, layers=6, heads=12, kv_heads=4, ff=2048), tok, directory)
    else:
        tok = wordpiece(data["train"].texts[:3000], vocab, MAXLEN)
        save(classifier("distilbert", tok, hidden=768, layers=6, heads=12, ff=3072), tok, directory)
    model = seqshap.load(directory)
    longer = model.vocab.tokenizer(data["test"].texts[:200], truncation=True, max_length=MAXLEN + 1)["input_ids"]
    full = [t for t, ids in zip(data["test"].texts[:200], longer, strict=True) if len(ids) > MAXLEN]
    return model, data["train"].texts[:100], full


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("distilbert", "llama"), default="distilbert")
    ap.add_argument("--reviews", type=int, default=1, help="reviews explained by each method (default 1)")
    ap.add_argument("--refs", type=int, default=100)
    ap.add_argument("--summarize", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary size (default 8000)")
    ap.add_argument("--max-evals", type=int, default=500, help="shap PartitionExplainer model calls (shap's default)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    from seqshap import DeepExplainer

    with tempfile.TemporaryDirectory() as tmp:
        model, background, reviews = build_model(Path(tmp) / f"{args.arch}-size", args.vocab, args.arch)
        texts = reviews[: args.reviews]
        bg = background[: args.refs]
        n_params = sum(p.numel() for p in model.net.parameters())
        print(f"model: {model.config['arch']} {model.config['model']}, {n_params:,} parameters, maxlen {MAXLEN}")
        ids = model.encode(texts)
        rows = torch.cat([ids, model.encode(bg)])
        with torch.no_grad():
            model.net(rows[:2])  # warm-up
            _, plain = timed(lambda: model.net(rows))
        print(f"plain forward of the {len(rows)} unique rows: {plain:.1f} s")
        result: dict = {
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "arch": model.config["arch"],
            "model": model.config["model"],
            "parameters": n_params,
            "maxlen": MAXLEN,
            "reviews": len(texts),
            "plain_forward_101_rows_s": plain,
        }

        for name, kwargs in (
            ("seqshap_100", {}),
            (f"seqshap_summarize_{args.summarize}", {"summarize": args.summarize}),
        ):
            ex, setup = timed(lambda kw=kwargs: DeepExplainer(model, bg, **kw))
            exps, t = timed(lambda ex=ex: ex.explain(texts))
            errs = [e.completeness_error for e in exps]
            result[name] = {
                "references": len(ex.background),
                "setup_s": setup,
                "s_per_review": t / len(texts),
                "max_completeness_error": max(errs),
                "base_value": float(exps[0].base_value),
            }
            print(f"{name}: {len(ex.background)} refs, {t / len(texts):.1f} s/review, completeness <= {max(errs):.1e}")
            if name == "seqshap_100":
                full = exps

        try:
            import shap
        except ImportError:
            shap = None
        if shap is not None:

            def f(batch) -> np.ndarray:  # texts -> p(positive), as seqshap explains it
                return model.predict(list(batch))

            masker = shap.maskers.Text(model.vocab.tokenizer)
            explainer = shap.Explainer(f, masker, algorithm="partition")
            sv, t = timed(lambda: explainer(texts, max_evals=args.max_evals, silent=True))
            fx = f(texts)
            miss = [abs(float(np.sum(sv.values[i])) - (fx[i] - float(sv.base_values[i]))) for i in range(len(texts))]
            # how far shap's base (the fully masked text) is from seqshap's (the mean over the 100 references)
            result["shap_partition"] = {
                "version": shap.__version__,
                "max_evals": args.max_evals,
                "s_per_review": t / len(texts),
                "max_completeness_error_own_base": max(miss),
                "base_value": float(sv.base_values[0]),
            }
            top_ours = [w.text.lower() for w in sorted(full[0].word_list(), key=lambda w: -abs(w.value))[:10]]
            result["shap_partition"]["note"] = (
                "approximate Owen values against one fully masked text; seqshap: exact DeepSHAP against the references"
            )
            print(
                f"shap PartitionExplainer ({shap.__version__}, max_evals={args.max_evals}): "
                f"{t / len(texts):.1f} s/review, completeness vs its own base <= {max(miss):.1e}; "
                f"seqshap's top words: {top_ours[:5]}"
            )
        else:
            print("shap is not installed: no PartitionExplainer row")
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
