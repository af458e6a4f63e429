import WorkerRuntime

/// Forwards every record unchanged to `<input topic>.out`: the runtime's own test and
/// overhead benchmark. A record whose value is the bytes `poison` is refused, to exercise
/// the dead-letter path with a real failing record.
struct PassThroughStage: Stage {
    func process(_ input: StageInput) async throws -> [StageOutput] {
        if input.value == Array("poison".utf8) {
            throw PoisonRecord()
        }
        return [StageOutput(topic: input.topic + ".out", key: input.key, value: input.value, headers: input.headers)]
    }
}

struct PoisonRecord: Error, CustomStringConvertible {
    var description: String { "cannot decode the record: it is the test poison value" }
}

try await Worker.run(stage: PassThroughStage(), name: "vigil-passthrough")
