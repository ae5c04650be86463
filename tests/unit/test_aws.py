"""`aws.conditional`: a failed condition is an answer (False), any other failure is raised."""
import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from chalicelib import aws


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "UpdateItem")


def raising(exc: Exception):
    def write():
        raise exc
    return write


def test_a_write_that_goes_through_is_true():
    done = []
    assert aws.conditional(lambda: done.append(1)) is True and done == [1]


@pytest.mark.parametrize("failure", [
    client_error("ConditionalCheckFailedException"),  # the low-level client, one item
    client_error("TransactionCanceledException"),  # the low-level client, a transaction
    UpdateError("update", client_error("ConditionalCheckFailedException")),  # a pynamodb model
    PutError("put", client_error("ConditionalCheckFailedException")),
    TransactWriteError("transaction", client_error("TransactionCanceledException")),
], ids=["client", "client transaction", "update", "put", "transaction"])
def test_a_failed_condition_is_false(failure):
    assert aws.conditional(raising(failure)) is False


@pytest.mark.parametrize("failure", [
    client_error("ProvisionedThroughputExceededException"),
    UpdateError("update", client_error("ValidationException")),
    PutError("put", client_error("InternalServerError")),
    RuntimeError("not DynamoDB's answer"),
])
def test_any_other_failure_is_raised(failure):
    with pytest.raises(type(failure)):
        aws.conditional(raising(failure))
