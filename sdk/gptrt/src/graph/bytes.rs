//! Just enough of ONNX's protobuf encoding to check a graph before ONNX Runtime sees it: whether an
//! initializer keeps its data in a separate file, which bytes in memory cannot reference (ONNX
//! Runtime would look for that file in the process's working directory), and which operators make a
//! row's result depend on the other rows of its batch.

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
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const NODE_OP_TYPE: u64 = 4;
const NODE_ATTRIBUTE: u64 = 5;
const ATTRIBUTE_GRAPH: u64 = 6;
const ATTRIBUTE_GRAPHS: u64 = 11;
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

/// Operators that compute one number over a whole input tensor, so over every row of a batch:
/// dynamic quantization's activation scale and zero point (onnxruntime's `quantize_dynamic`,
/// optimum's `--avx512_vnni`-style int8 exports, and the fused ops ONNX Runtime makes of them).
/// A sequence batched with others then gets other numbers, and possibly other tokens, than alone.
pub(crate) const BATCH_DEPENDENT_OPS: &[&str] = &[
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
];

/// Subgraphs nest (If branches, Loop bodies); deeper than this is not a real export, and stopping
/// keeps a crafted file from exhausting the stack.
const MAX_GRAPH_DEPTH: usize = 32;

/// The [`BATCH_DEPENDENT_OPS`] that the nodes of a serialized `GraphProto` and its subgraphs use.
fn scan_graph(graph: &[u8], depth: usize, found: &mut Vec<String>) {
    if depth > MAX_GRAPH_DEPTH {
        return;
    }
    for node in bytes_of(graph, GRAPH_NODE) {
        scan_node(node, depth, found);
    }
}

fn scan_node(node: &[u8], depth: usize, found: &mut Vec<String>) {
    if let Some(op) = bytes_of(node, NODE_OP_TYPE).next() {
        if let Some(&name) = BATCH_DEPENDENT_OPS
            .iter()
            .find(|name| name.as_bytes() == op)
        {
            if !found.iter().any(|f| f == name) {
                found.push(name.to_string());
            }
        }
    }
    for attribute in bytes_of(node, NODE_ATTRIBUTE) {
        for subgraph in
            bytes_of(attribute, ATTRIBUTE_GRAPH).chain(bytes_of(attribute, ATTRIBUTE_GRAPHS))
        {
            scan_graph(subgraph, depth + 1, found);
        }
    }
}

/// The [`BATCH_DEPENDENT_OPS`] a serialized model uses, in its graph or any subgraph, in the
/// order met. Malformed bytes end the scan (ONNX Runtime reports the parse error itself).
pub(crate) fn batch_dependent_ops(model: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for graph in bytes_of(model, MODEL_GRAPH) {
        scan_graph(graph, 0, &mut found);
    }
    found
}

/// [`batch_dependent_ops`] of a model file, read as a stream: the initializers (nearly all of a
/// graph's bytes) are skipped with seeks, so a large model costs a few reads, not its size. A read
/// error or malformed bytes end the scan with what was found so far (ONNX Runtime, which has read
/// the file already, reports a malformed one itself).
pub(crate) fn batch_dependent_ops_in_file(path: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let _ = scan_file(path, &mut found);
    found
}

fn scan_file(path: &std::path::Path, found: &mut Vec<String>) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let end = file.metadata()?.len();
    let mut reader = std::io::BufReader::new(file);
    let mut stream = Stream {
        reader: &mut reader,
        position: 0,
        end,
    };
    while let Some((field, len)) = stream.next_field()? {
        let Some(len) = len else { continue };
        if field != MODEL_GRAPH {
            stream.skip(len)?;
            continue;
        }
        let file_end = stream.end;
        stream.end = stream.position + len;
        while let Some((field, len)) = stream.next_field()? {
            let Some(len) = len else { continue };
            if field == GRAPH_NODE {
                scan_node(&stream.take(len)?, 0, found);
            } else {
                stream.skip(len)?;
            }
        }
        if stream.position != stream.end {
            break;
        }
        stream.end = file_end;
    }
    Ok(())
}

/// A protobuf message read field by field from a file, up to `end`.
struct Stream<'r> {
    reader: &'r mut std::io::BufReader<std::fs::File>,
    position: u64,
    end: u64,
}

impl Stream<'_> {
    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        let mut byte = [0u8];
        if self.position >= self.end || std::io::Read::read(self.reader, &mut byte)? == 0 {
            return Ok(None);
        }
        self.position += 1;
        Ok(Some(byte[0]))
    }

    fn varint(&mut self) -> std::io::Result<Option<u64>> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(byte) = self.byte()? else {
                return Ok(None);
            };
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// The next field: its number, and its length when it is a message or string (the caller
    /// reads or skips it); numbers are skipped here. `None` at the end or at a malformed byte.
    fn next_field(&mut self) -> std::io::Result<Option<(u64, Option<u64>)>> {
        let Some(key) = self.varint()? else {
            return Ok(None);
        };
        let len = match key & 7 {
            0 => self.varint()?.map(|_| None),
            1 => self.skip(8)?.then_some(None),
            2 => match self.varint()? {
                Some(len) if len <= self.end.saturating_sub(self.position) => Some(Some(len)),
                _ => None,
            },
            5 => self.skip(4)?.then_some(None),
            _ => None,
        };
        Ok(len.map(|len| (key >> 3, len)))
    }

    /// Skip `len` bytes; false past the end.
    fn skip(&mut self, len: u64) -> std::io::Result<bool> {
        if len > self.end.saturating_sub(self.position) {
            self.position = self.end;
            return Ok(false);
        }
        let offset = i64::try_from(len).map_err(std::io::Error::other)?;
        self.reader.seek_relative(offset)?;
        self.position += len;
        Ok(true)
    }

    fn take(&mut self, len: u64) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
        std::io::Read::read_exact(self.reader, &mut bytes)?;
        self.position += len;
        Ok(bytes)
    }
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

    fn node(op: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut out = field(NODE_OP_TYPE, op.as_bytes());
        for attribute in attributes {
            out.extend(field(NODE_ATTRIBUTE, attribute));
        }
        out
    }

    /// A model whose graph has a weight initializer, then `nodes`.
    fn model_with_nodes(nodes: &[Vec<u8>]) -> Vec<u8> {
        let weight = [field(TENSOR_NAME, b"w"), field(9, &[7; 100])].concat();
        let mut graph = field(GRAPH_INITIALIZER, &weight);
        for n in nodes {
            graph.extend(field(GRAPH_NODE, n));
        }
        let mut out = vec![1 << 3, 9];
        // a graph over 127 bytes: a two-byte length
        out.extend([
            (MODEL_GRAPH << 3 | 2) as u8,
            (graph.len() & 0x7f) as u8 | 0x80,
            (graph.len() >> 7) as u8,
        ]);
        out.extend(graph);
        out
    }

    fn both_ways(model: &[u8]) -> Vec<String> {
        let in_memory = batch_dependent_ops(model);
        let path = std::env::temp_dir().join(format!(
            "gptrt-graph-bytes-{}-{:?}.onnx",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, model).unwrap();
        let from_file = batch_dependent_ops_in_file(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            in_memory, from_file,
            "the file scan and the memory scan agree"
        );
        in_memory
    }

    #[test]
    fn finds_dynamic_quantization_also_inside_if_branches() {
        let plain = [node("MatMulNBits", &[]), node("LayerNormalization", &[])];
        assert!(both_ways(&model_with_nodes(&plain)).is_empty());

        let top = [
            node("DynamicQuantizeLinear", &[]),
            node("MatMulInteger", &[]),
        ];
        assert_eq!(
            both_ways(&model_with_nodes(&top)),
            ["DynamicQuantizeLinear"]
        );

        // a merged export: the quantized MatMuls sit in the branches of an If
        let branch = field(GRAPH_NODE, &node("DynamicQuantizeMatMul", &[]));
        let then_branch = [field(1, b"then_branch"), field(ATTRIBUTE_GRAPH, &branch)].concat();
        let merged = [
            node("If", &[then_branch]),
            node("DynamicQuantizeLinear", &[]),
        ];
        assert_eq!(
            both_ways(&model_with_nodes(&merged)),
            ["DynamicQuantizeMatMul", "DynamicQuantizeLinear"]
        );
        let loop_body = [field(1, b"bodies"), field(ATTRIBUTE_GRAPHS, &branch)].concat();
        assert_eq!(
            both_ways(&model_with_nodes(&[node("Scan", &[loop_body])])),
            ["DynamicQuantizeMatMul"]
        );
    }

    #[test]
    fn malformed_bytes_end_the_scan_without_an_error() {
        let model = model_with_nodes(&[node("DynamicQuantizeLinear", &[])]);
        assert!(both_ways(&model[..model.len() - 4]).is_empty());
        assert!(both_ways(&[0xff; 12]).is_empty());
        assert!(both_ways(b"").is_empty());
        assert!(batch_dependent_ops_in_file(std::path::Path::new("/nonexistent.onnx")).is_empty());
    }
}
