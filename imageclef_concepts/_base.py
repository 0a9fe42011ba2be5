"""What every concept classifier of the library shares."""

from ._metrics import imageclef_f1_score


def concept_tuples(classes, indicator):
    """The concepts of each row of an indicator matrix, as tuples of ``classes`` entries."""
    return [tuple(classes[row.astype(bool)]) for row in indicator]


class OfficialScoreMixin:
    """``score`` is the official ImageCLEF F1 of ``predict``."""

    def score(self, X, y, sample_weight=None):
        """The official ImageCLEF F1 of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of images or sequence of paths
        y : indicator matrix or sequence of concept lists
            In the form the model was fitted on.
        sample_weight : None
            Not supported by the official score; must be None.

        Returns
        -------
        float
        """
        if sample_weight is not None:
            raise ValueError("The official ImageCLEF F1 has no sample weights.")
        return imageclef_f1_score(y, self.predict(X))


def set_multilabel_tags(tags, *, images=True):
    """Tags of a multi-label concept classifier; ``images``: X is images, not a table."""
    if images:
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
    tags.target_tags.required = True
    tags.target_tags.one_d_labels = False
    tags.target_tags.two_d_labels = True
    tags.target_tags.multi_output = True
    tags.target_tags.single_output = False
    tags.classifier_tags.multi_class = False
    tags.classifier_tags.multi_label = True
    return tags
