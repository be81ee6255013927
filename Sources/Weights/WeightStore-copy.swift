// Writing a checkpoint back out with its matrices in the formats the engine made them in: a pre-quantized
// (or re-typed) copy that loads without converting anything.

import Tensor

extension WeightStore {
    /// Writes every tensor of this store into one safetensors file at `path`. The matrices in `matrices`
    /// (by name, as a model took them from this store) are written as they are held: f32, bf16 or f16 under
    /// their own name, int8/int4 in `QuantizedLayout`; a matrix held in the type it is stored in, and every
    /// other tensor, is copied byte for byte. Returns the bytes of tensor data written.
    @discardableResult
    public func writeCopy(to path: String, matrices: [String: WeightMatrix]) throws -> Int {
        precondition(synthesizer == nil, "a synthetic store has no tensors to copy")
        var outputs: [SafeTensorsOutput] = []
        var replacedScales: Set<String> = []
        var quantized = false
        for name in names {
            let file = files[fileOfTensor[name]!], entry = file.entries[name]!
            let storedQuantized = try preQuantizedFormat(of: entry, in: file)
            let stored = storedQuantized ?? entry.dtype.matrixFormat
            guard let matrix = matrices[name], matrix.format != stored else {
                outputs.append(Self.verbatim(entry, of: file))
                quantized = quantized || storedQuantized != nil
                continue
            }
            if storedQuantized != nil { replacedScales.insert(QuantizedLayout.scalesName(of: name)) }
            outputs += Self.outputs(of: matrix, named: name)
            quantized = quantized || matrix.format.isBlockQuantized
        }
        outputs.removeAll { replacedScales.contains($0.name) }
        var metadata: [String: String] = [:]
        for file in files { metadata.merge(file.metadata) { first, _ in first } }
        metadata[QuantizedLayout.metadataKey] = quantized ? QuantizedLayout.version : nil
        if metadata["format"] == nil { metadata["format"] = "pt" }
        try SafeTensorsFile.write(outputs, metadata: metadata, to: path)
        return outputs.reduce(0) { $0 + $1.byteCount }
    }

    /// The tensor `entry` of `file` with its stored bytes.
    private static func verbatim(_ entry: SafeTensorEntry, of file: SafeTensorsFile) -> SafeTensorsOutput {
        let mapped = file.file
        return SafeTensorsOutput(name: entry.name, dtype: entry.dtype, shape: entry.shape) { body in
            try body(UnsafeRawBufferPointer(rebasing: mapped.bytes[entry.byteRange]))
        }
    }

    /// The tensors that hold `matrix` under `name`.
    private static func outputs(of matrix: WeightMatrix, named name: String) -> [SafeTensorsOutput] {
        func bytes(_ b: WeightBytes) -> ((UnsafeRawBufferPointer) throws -> Void) throws -> Void {
            { body in try withExtendedLifetime(b) { try body(UnsafeRawBufferPointer(start: b.base, count: b.count)) } }
        }
        func floats(_ t: Tensor) -> ((UnsafeRawBufferPointer) throws -> Void) throws -> Void {
            { body in try t.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) } }
        }
        let (rows, columns) = (matrix.rows, matrix.columns)
        switch matrix.payload {
        case .f32(let t):
            return [SafeTensorsOutput(name: name, dtype: .f32, shape: [rows, columns], withBytes: floats(t))]
        case .f32InputMajor(let t):
            return [SafeTensorsOutput(name: name, dtype: .f32, shape: [columns, rows], withBytes: floats(t))]
        case .half(let values):
            return [SafeTensorsOutput(name: name, dtype: matrix.format == .bf16 ? .bf16 : .f16, shape: [rows, columns],
                                      withBytes: bytes(values))]
        case .quantized:
            let (values, scales) = matrix.rowMajorQuantized()
            return [
                SafeTensorsOutput(name: name, dtype: QuantizedLayout.valueDType(matrix.format)!,
                                  shape: [rows, WeightMatrix.quantizedRowBytes(matrix.format, columns: columns)],
                                  withBytes: bytes(values)),
                SafeTensorsOutput(name: QuantizedLayout.scalesName(of: name), dtype: .f16,
                                  shape: [rows, columns / WeightFormat.quantBlock], withBytes: bytes(scales)),
            ]
        }
    }
}
