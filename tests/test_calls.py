"""The neutral call's vocabularies (callgate.calls), which configurations are checked against."""

from callgate.calls import ANSWERED_RESULTS, END_RESULTS
from callgate.protocols.v1.decode import DICE_RESULTS
from callgate.protocols.v2.wire import CALL_RESULTS


def test_end_results_are_every_result_either_generation_sends():
    """``dispositions`` and the like may name any result a v1 DICE or a v2 end event carries, and nothing else."""
    assert END_RESULTS == DICE_RESULTS | CALL_RESULTS
    assert ANSWERED_RESULTS <= END_RESULTS
