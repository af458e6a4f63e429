import CVision
import Logging

/// One output of a model run: its tensor name, shape and values (float32, row-major).
public struct Tensor: Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
}

/// A verified model compiled for the CPU by OpenVINO, with one inference request. Not shared
/// between tasks: each detector owns its model, and a worker runs one detector per stage.
public final class InferenceModel {
    public let model: VerifiedModel
    /// The input shape the model runs with (after any reshape).
    public let inputShape: [Int]
    public let outputNames: [String]
    private let handle: OpaquePointer

    /// Loads and compiles `model` with `threads` inference threads (0: OpenVINO chooses);
    /// `inputShape` reshapes a fully convolutional model's input. Logs the file's SHA-256.
    public init(_ model: VerifiedModel, inputShape: [Int]? = nil, threads: Int, logger: Logger) throws(ModelError) {
        var message = [CChar](repeating: 0, count: 1024)
        let dims = (inputShape ?? []).map(Int64.init)
        let loaded = dims.withUnsafeBufferPointer {
            vv_model_load(model.path, $0.baseAddress, Int32(dims.count), Int32(threads), &message, message.count)
        }
        guard let loaded else {
            throw ModelError(kind: .unusable, message: "model \(model.description.name) (\(model.path)) cannot be loaded: \(String(cString: message))")
        }
        handle = loaded
        self.model = model
        var shape = [Int64](repeating: 0, count: 8)
        let rank = Int(vv_model_input_shape(loaded, &shape, 8))
        self.inputShape = shape.prefix(rank).map(Int.init)
        outputNames = (0..<vv_model_output_count(loaded)).map { String(cString: vv_model_output_name(loaded, $0)) }
        logger.info("loaded model", metadata: [
            "model": "\(model.description.name)", "file": "\(model.description.file)", "sha256": "\(model.sha256)",
            "package": "\(model.description.package)", "input": "\(self.inputShape)", "threads": "\(threads)",
        ])
    }

    deinit { vv_model_free(handle) }

    /// The number of input values: the product of the input shape.
    public var inputCount: Int { inputShape.reduce(1, *) }

    /// Runs the model on `input` (float32 in the input's shape and layout).
    public func run(_ input: [Float]) throws(ModelError) -> [Tensor] {
        precondition(input.count == inputCount, "input has \(input.count) values, the model takes \(inputCount)")
        var message = [CChar](repeating: 0, count: 1024)
        let status = input.withUnsafeBufferPointer { vv_model_infer(handle, $0.baseAddress, &message, message.count) }
        guard status == 0 else {
            throw ModelError(kind: .unusable, message: "model \(model.description.name) failed: \(String(cString: message))")
        }
        var tensors: [Tensor] = []
        for index in outputNames.indices {
            var dims = [Int64](repeating: 0, count: 8)
            var rank: Int32 = 0
            guard let data = vv_model_output(handle, index, &dims, 8, &rank) else {
                throw ModelError(kind: .unusable, message: "model \(model.description.name) gave no float32 output \(index)")
            }
            let shape = dims.prefix(Int(rank)).map(Int.init)
            tensors.append(Tensor(name: outputNames[index], shape: shape, values: Array(UnsafeBufferPointer(start: data, count: shape.reduce(1, *)))))
        }
        return tensors
    }
}
