"""The command line's procedures and scores: ``demo``, ``reproduce-2019`` and ``evaluate``.

Each ``add_*`` adds a subcommand's options to the parser (no scikit-learn or
TensorFlow: ``--help`` reads them); its ``_run_*`` does the work, importing
the heavy modules only then.
"""

import sys
import time
from pathlib import Path

from ..concept_files._editions import EDITION_CHOICES, secondary_score_note
from ..concept_files._evaluation import evaluate_run
from ._arguments import UserError, check_output, positive_int, seed


def add_demo(commands):
    demo = commands.add_parser(
        "demo", help="the whole pipeline on built-in synthetic data",
        description="Generate synthetic radiology-like images in the ImageCLEF layout, run a "
        "two-round coarse-to-fine GridSearchCV over ConceptCNNClassifier inside a "
        "ThresholdTuner, and print the official F1 on held-out images of the "
        "most-frequent-concepts baseline and of the CNN at 0.5, 0.1 and the tuned threshold.")
    demo.add_argument("--output", type=Path, default=None,
                      help="folder for the data, run file, model and plots "
                           "(default: a new folder demo-output-<time>)")
    demo.add_argument("--quick", action="store_true",
                      help="a smaller run, under a minute on 2 idle cores (default: the full "
                           "run, about 1.5 minutes there, several times that on busy cores)")
    demo.add_argument("--random-state", type=seed, default=0,
                      help="seed of the data, the splits and the networks (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="print only the results table")
    demo.set_defaults(run_command=_run_demo)


def _run_demo(args):
    import logging

    from ..recipes._demo import run_demo

    # A grid search builds a new network per fit; TensorFlow's "retracing"
    # warnings about that are expected here and only noise.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    output = args.output or Path(f"demo-output-{time.strftime('%Y%m%d-%H%M%S')}")
    _check_new_folder(output)
    say = (lambda line: None) if args.quiet else print
    summary = run_demo(output, quick=args.quick, random_state=args.random_state, say=say,
                       progress=not args.quiet)
    if args.quiet:
        from ..recipes._demo import results_table

        print(results_table(summary["scores"]))
    return 0


def _check_new_folder(output):
    """Refuse an --output that is not a new or empty folder (a user's files, a device), by kind."""
    from ..files._atomic import file_kind

    if output.exists() and not output.is_dir():
        kind = "a file" if output.is_file() else file_kind(output.stat().st_mode)
        raise UserError(f"--output {output} is {kind}; name a new folder.")
    if output.is_dir() and any(output.iterdir()):
        raise UserError(f"--output {output} exists and is not empty; name a new folder.")


def add_reproduce(commands):
    reproduce = commands.add_parser(
        "reproduce-2019", help="the paper's procedure, from the 2019 data to the run file",
        description="Run the MacUni-CSIRO ImageCLEF 2019 procedure: training and validation "
        "concepts combined, a coarse-to-fine search over learning rate, batch size and decay "
        "(10 epochs each, best epoch by accuracy), the threshold checked on held-out data "
        "(0.1 unless --tune-threshold), the test images' run file in the 2019 layout, and a "
        "report. The data folder holds train_concepts.tsv, valid_concepts.tsv (and "
        "test_concepts.tsv to score) with the images in train/, valid/ and test/ or images/.")
    reproduce.add_argument("--data", type=Path,
                           help="the dataset folder (default: none; required unless --dry-run)")
    reproduce.add_argument("--output", type=Path, required=True,
                           help="folder for run.tsv, model.keras, report.md, report.json")
    reproduce.add_argument("--no-merge-validation", dest="merge_validation",
                           action="store_false",
                           help="train on the training set only (the paper merged them)")
    reproduce.add_argument("--tune-threshold", action="store_true",
                           help="use the best threshold on held-out data, not the paper's 0.1")
    reproduce.add_argument("--dry-run", action="store_true",
                           help="the whole procedure on a small synthetic dataset in the 2019 "
                                "layout (written to <output>/data), in about a minute")
    reproduce.add_argument("--random-state", type=seed, default=0,
                           help="seed of the splits and the networks (default: 0)")
    reproduce.add_argument("--quiet", action="store_true", help="print only the final score")
    reproduce.set_defaults(run_command=_run_reproduce)


def _run_reproduce(args):
    from ..datasets._imageclef import make_imageclef_2019_layout
    from ..recipes._reproduce import DRY_RUN, reproduce_2019

    if args.dry_run == (args.data is not None):
        raise UserError("give --data DIR, or --dry-run (which makes its own data).")
    _check_new_folder(args.output)  # before the dry run's data
    data = args.data
    if args.dry_run:
        data = args.output / "data"
        make_imageclef_2019_layout(data, random_state=args.random_state)
    elif not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    report = reproduce_2019(data, args.output, merge_validation=args.merge_validation,
                            tune_threshold=args.tune_threshold,
                            procedure=DRY_RUN if args.dry_run else None,
                            random_state=args.random_state,
                            say=(lambda line: None) if args.quiet else print)
    score = report["run_file"].get("official_f1")
    print(f"Official F1 on the test images: {score:.4f} (the paper: 0.1435)" if score is not None
          else f"Run file: {report['run_file']['path']}")
    return 0


def add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="score a run file with the official F1",
        description="Check a run file against the ground truth and print its official "
        "ImageCLEF F1 (mean per-image F1 over images with at least one true concept).",
    )
    evaluate.add_argument("run", help="the run file")
    evaluate.add_argument("ground_truth", help="the ground-truth concept file")
    evaluate.add_argument("--edition", choices=EDITION_CHOICES, default="auto",
                          help="read, refuse and score as that year's evaluator; auto picks "
                               "the edition that fits the files (default: auto)")
    evaluate.add_argument("--secondary-truth", default=None, metavar="FILE",
                          help="also print the secondary F1 against this second ground truth "
                               f"(concepts_manual.csv; {secondary_score_note()}), both sides "
                               "restricted to the edition's secondary concepts (default: none)")
    evaluate.add_argument("--max-concepts", type=positive_int, default=None,
                          help="also refuse lines with more concepts (the edition's own "
                               "maximum always applies; default: no other limit)")
    evaluate.add_argument("--cui-only", action="store_true",
                          help="refuse concepts that are not UMLS CUIs (C followed by digits)")
    evaluate.add_argument("--secondary-concepts", default=None, metavar="FILE",
                          help="the secondary F1's concepts, one per line in FILE; without "
                               "--secondary-truth the ground truth is restricted to them "
                               "(default: the edition's own list)")
    evaluate.add_argument("--bounds", default=None, type=Path, metavar="TRAIN_CONCEPTS",
                          help="also print the ceilings of the split, from its training "
                               "concept file: the official F1 of a perfect model on the "
                               "training vocabulary, of the best training image copied, and "
                               "of the best top-k frequent concepts list (default: none)")
    evaluate.add_argument("--report", default=None, type=Path, metavar="FILE",
                          help="also write one self-contained HTML report of the run (scores, "
                               "ceilings with --bounds, per-concept precision and recall, the "
                               "worst images), readable offline (default: none)")
    evaluate.add_argument("--images", default=None, type=Path, metavar="DIR",
                          help="the run's images, for thumbnails of the worst images in "
                               "--report (default: none)")
    evaluate.set_defaults(run_command=_run_evaluate)


def _run_evaluate(args):
    train = _check_report_arguments(args)
    result = evaluate_run(args.run, args.ground_truth, edition=args.edition,
                          secondary_truth=args.secondary_truth,
                          secondary_concepts=args.secondary_concepts,
                          max_concepts=args.max_concepts, cui_only=args.cui_only)
    # Everything that can fail on a user's file is done before the first line is printed.
    bounds = _bounds_and_report(args, result, train)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"Edition: {result.edition_note or result.edition}")
    print(f"Mean F1 score: {result.score}")
    if result.secondary_score is not None:
        print(f"Secondary F1 score: {result.secondary_score}")
    print(f"({result.n_scored} of {result.n_images} images have true concepts and are "
          "averaged)")
    for name, found in (bounds or {}).items():
        print(f"Ceilings of the split ({name} score; training concepts: {args.bounds}):")
        for line in found.lines():
            print(f"  {line}")
    if args.report is not None:
        print(f"Report: {args.report}")
    return 0


def _check_report_arguments(args):
    """The files --bounds, --report and --images name, checked (and --bounds read) before
    any scoring; returns the training concepts of --bounds, or None."""
    from ..concept_files._io import read_concepts
    from ..files._atomic import check_regular_file

    if args.images is not None and args.report is None:
        raise UserError("--images is for the thumbnails of --report: give --report FILE too.")
    if args.bounds is not None:
        check_regular_file(args.bounds, "training concept file")
    if args.images is not None and not args.images.is_dir():
        raise UserError(f"--images: image folder not found: {args.images}")
    if args.report is not None:
        named = (args.run, args.ground_truth, args.secondary_truth, args.secondary_concepts,
                 args.bounds)
        check_output(args.report, [Path(path) for path in named if path is not None]
                     + [args.images], flag="--report")
    return None if args.bounds is None else read_concepts(args.bounds).concepts


def _bounds_and_report(args, result, train):
    """The ceilings of the split (with --bounds) and the report (with --report) written."""
    from ..report._html import run_bounds, write_report

    bounds = None if train is None else run_bounds(result, train)
    if args.report is not None:
        write_report(args.report, result, train_concepts=train, images=args.images,
                     bounds=bounds)
    return bounds
