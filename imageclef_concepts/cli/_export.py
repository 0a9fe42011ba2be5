"""The command line's ``export`` subcommand: a trained network as an ONNX file for serving.

The file computes what the model's ``predict_proba`` computes (test-time
augmentation included) and carries its concepts and decision rule
(:meth:`ConceptCNNClassifier.export <imageclef_concepts.ConceptCNNClassifier.export>`).
"""

from pathlib import Path

from ._arguments import UserError, check_output, say_unless_quiet

SUFFIX = ".onnx"


def add_export(commands):
    export = commands.add_parser(
        "export", help="export a trained network as an ONNX file for serving",
        description="Write a trained ConceptCNNClassifier as an ONNX file that ONNX Runtime "
        "serves without this library: its input 'images' takes uint8 pixels (batch x size x "
        "size x 3), its output 'probabilities' gives what the model's predict_proba gives "
        "(test-time augmentation included), and its metadata holds the concepts of the "
        "output's columns and the decision rule, as JSON. Needs tf2onnx and onnx: pip "
        "install \"imageclef_concepts[onnx]\".")
    export.add_argument("model", type=Path, help="a .keras model file (or a .zip or .joblib "
                                                 "file holding a ConceptCNNClassifier)")
    export.add_argument("output", type=Path, help=f"the {SUFFIX} file to write")
    export.add_argument("--allow-pickle", action="store_true",
                        help="allow a .joblib model: a pickle runs any code it holds, so only "
                             "for files you made yourself")
    export.add_argument("--quiet", action="store_true", help="no summary line")
    export.set_defaults(run_command=_run_export)


def _run_export(args):
    from ..models._onnx import check_onnx_installed
    from ..recipes._workflows import load_model

    check_output(args.output, inputs=[args.model], flag="output")
    if args.output.suffix != SUFFIX:
        raise UserError(f"output {args.output} must end in {SUFFIX}.")
    try:
        check_onnx_installed()  # before the model is loaded
    except ImportError as error:
        raise UserError(str(error)) from None
    model = load_model(args.model, allow_pickle=args.allow_pickle)
    if not callable(getattr(model, "export", None)):
        raise UserError(f"{args.model} holds a {type(model).__name__}: only a "
                        "ConceptCNNClassifier (one network) can be exported.")
    model.export(args.output, format="onnx")
    say_unless_quiet(args, f"Wrote {args.output}: input 'images' (uint8, batch x "
                           f"{model.image_size} x {model.image_size} x 3), output "
                           f"'probabilities' ({len(model.classes_)} concepts); the concepts "
                           "and the decision rule are in its metadata.")
    return 0
