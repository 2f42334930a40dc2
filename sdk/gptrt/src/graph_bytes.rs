//! Just enough of ONNX's protobuf encoding to check a graph held in memory before ONNX Runtime sees
//! it: whether an initializer keeps its data in a separate file, which bytes in memory cannot
//! reference (ONNX Runtime would look for that file in the process's working directory).

/// A field's value on the wire: numbers are skipped, nested messages and strings kept.
enum Wire<'a> {
    Number,
    Bytes(&'a [u8]),
}

/// The top-level fields of one protobuf message, `(field number, value)`; stops at the first
/// malformed byte (ONNX Runtime then reports the parse error itself).
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn of(message: &'a [u8]) -> Fields<'a> {
        Fields { rest: message }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn skip(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Some(taken)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Wire<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => self.varint().map(|_| Wire::Number),
            1 => self.skip(8).map(|_| Wire::Number),
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                self.skip(len).map(Wire::Bytes)
            }
            5 => self.skip(4).map(|_| Wire::Number),
            _ => None,
        };
        if wire.is_none() {
            self.rest = &[];
        }
        Some((key >> 3, wire?))
    }
}

/// The nested messages or strings of field `number`.
fn bytes_of(message: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    Fields::of(message).filter_map(move |(field, wire)| match wire {
        Wire::Bytes(bytes) if field == number => Some(bytes),
        _ => None,
    })
}

// Field numbers in onnx.proto.
const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_NAME: u64 = 8;
const TENSOR_EXTERNAL_DATA: u64 = 13;
const ENTRY_KEY: u64 = 1;
const ENTRY_VALUE: u64 = 2;

/// The first initializer of a serialized ONNX model whose data is in an external file:
/// `(initializer name, file name)`.
pub(crate) fn external_initializer(model: &[u8]) -> Option<(String, String)> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    bytes_of(model, MODEL_GRAPH)
        .flat_map(|graph| bytes_of(graph, GRAPH_INITIALIZER))
        .find_map(|tensor| {
            let location = bytes_of(tensor, TENSOR_EXTERNAL_DATA).find_map(|entry| {
                let key = bytes_of(entry, ENTRY_KEY).next()?;
                (key == b"location").then(|| bytes_of(entry, ENTRY_VALUE).next().map(text))?
            })?;
            let name = bytes_of(tensor, TENSOR_NAME).next().map(text);
            Some((name.unwrap_or_default(), location))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn model(tensor: &[u8]) -> Vec<u8> {
        // ir_version (a varint field) first, as exporters write it
        let mut out = vec![1 << 3, 9];
        out.extend(field(MODEL_GRAPH, &field(GRAPH_INITIALIZER, tensor)));
        out
    }

    #[test]
    fn finds_an_initializer_stored_in_a_separate_file() {
        let entry = [field(ENTRY_KEY, b"location"), field(ENTRY_VALUE, b"w.data")].concat();
        let tensor = [
            field(TENSOR_NAME, b"wte"),
            field(TENSOR_EXTERNAL_DATA, &entry),
        ]
        .concat();
        assert_eq!(
            external_initializer(&model(&tensor)),
            Some(("wte".to_string(), "w.data".to_string()))
        );
    }

    #[test]
    fn inline_weights_and_malformed_bytes_find_nothing() {
        let tensor = [field(TENSOR_NAME, b"wte"), field(9, &[0; 16])].concat();
        assert_eq!(external_initializer(&model(&tensor)), None);
        let mut truncated = model(&tensor);
        truncated.truncate(truncated.len() - 3);
        assert_eq!(external_initializer(&truncated), None);
        assert_eq!(external_initializer(&[0xff; 12]), None);
        assert_eq!(external_initializer(b""), None);
    }
}
