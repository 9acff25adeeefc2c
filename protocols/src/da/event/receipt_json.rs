//! The JSON form of a `receipt_recorded` event (documented on
//! [`super::DaEvent::ReceiptRecorded`]): readable fields derived from the receipt, and the
//! whole receipt as hex CBOR.

use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};

use crate::da::Bytes32;
use crate::receipt::{ThresholdReceipt, MAX_THRESHOLD_RECEIPT_BYTES};

/// The fields of the JSON object besides `"type"`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    receipt_id: Bytes32,
    receipt_hash: Bytes32,
    workload_id: Bytes32,
    node_key: Bytes32,
    submitter: Bytes32,
    epoch: u64,
    receipt_cbor: String,
}

/// `serialize_with` of the variant (its one field, a `&Box<ThresholdReceipt>`, coerces to
/// the reference taken here); the enum's tagging adds `"type"`.
pub(super) fn serialize<S: Serializer>(r: &ThresholdReceipt, s: S) -> Result<S::Ok, S::Error> {
    let cbor = r.to_bytes().map_err(ser::Error::custom)?;
    let receipt_hash = r.receipt_hash().map_err(ser::Error::custom)?;
    ReceiptJson {
        receipt_id: r.receipt_id(),
        receipt_hash,
        workload_id: r.receipt.workload_id,
        node_key: r.receipt.node_key,
        submitter: r.receipt.submitter,
        epoch: r.epoch,
        receipt_cbor: hex::encode(cbor),
    }
    .serialize(s)
}

/// `deserialize_with` of the variant (the enum's tagging has taken `"type"`): decodes `receipt_cbor` (at most
/// [`MAX_THRESHOLD_RECEIPT_BYTES`] bytes) and refuses the object when a derived field
/// differs from the receipt's.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Box<ThresholdReceipt>, D::Error> {
    use de::Error as _;
    let j = ReceiptJson::deserialize(d)?;
    if j.receipt_cbor.len() > 2 * MAX_THRESHOLD_RECEIPT_BYTES {
        return Err(D::Error::custom(format_args!(
            "receipt_cbor: more than {MAX_THRESHOLD_RECEIPT_BYTES} bytes"
        )));
    }
    let bytes = hex::decode(&j.receipt_cbor)
        .map_err(|_| D::Error::custom("receipt_cbor: not lowercase or uppercase hex"))?;
    let r = ThresholdReceipt::from_bytes(&bytes)
        .map_err(|e| D::Error::custom(format_args!("receipt_cbor: {e}")))?;
    let receipt_hash = r.receipt_hash().map_err(D::Error::custom)?;
    let derived = [
        ("receipt_id", j.receipt_id, r.receipt_id()),
        ("receipt_hash", j.receipt_hash, receipt_hash),
        ("workload_id", j.workload_id, r.receipt.workload_id),
        ("node_key", j.node_key, r.receipt.node_key),
        ("submitter", j.submitter, r.receipt.submitter),
    ];
    for (name, given, actual) in derived {
        if given != actual {
            return Err(D::Error::custom(format_args!(
                "{name} differs from the receipt in receipt_cbor"
            )));
        }
    }
    if j.epoch != r.epoch {
        return Err(D::Error::custom(
            "epoch differs from the receipt in receipt_cbor",
        ));
    }
    Ok(Box::new(r))
}
