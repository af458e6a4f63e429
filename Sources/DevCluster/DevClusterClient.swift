import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Talks to a running dev cluster's control API, found through its state file.
public struct DevClusterClient: Sendable {
    public let state: DevClusterState

    /// Reads the state file a running `vigil dev-cluster` wrote.
    public init(stateFile: URL) throws {
        guard let data = try? Data(contentsOf: stateFile) else {
            throw DevClusterClientError(
                "no dev cluster state at \(stateFile.path): start one with `vigil dev-cluster`, or pass the --state-file it uses"
            )
        }
        do {
            state = try JSONDecoder().decode(DevClusterState.self, from: data)
        } catch {
            throw DevClusterClientError("\(stateFile.path) is not a dev cluster state file: \(error)")
        }
    }

    public func createTopic(_ topic: DevClusterTopic) async throws {
        try await post("topics", body: topic)
    }

    public func setBroker(_ broker: Int32, up: Bool) async throws {
        try await post("brokers/\(broker)/\(up ? "up" : "down")", body: Optional<Int>.none)
    }

    public func setRoundTripTime(broker: Int32, milliseconds: Int) async throws {
        try await post("brokers/\(broker)/rtt", body: ["milliseconds": milliseconds])
    }

    public func setLeader(topic: String, partition: Int32, broker: Int32) async throws {
        struct Leader: Encodable { var topic: String; var partition: Int32; var broker: Int32 }
        try await post("partitions/leader", body: Leader(topic: topic, partition: partition, broker: broker))
    }

    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) async throws {
        struct RequestErrors: Encodable { var apiKey: Int16; var errors: [Int32] }
        try await post("request-errors", body: RequestErrors(apiKey: apiKey, errors: errors))
    }

    public func setCoordinator(keyType: String, key: String, broker: Int32) async throws {
        struct Coordinator: Encodable { var keyType: String; var key: String; var broker: Int32 }
        try await post("coordinator", body: Coordinator(keyType: keyType, key: key, broker: broker))
    }

    private func post(_ path: String, body: (some Encodable)?) async throws {
        guard let url = URL(string: "\(state.controlURL)/\(path)") else {
            throw DevClusterClientError("bad control URL \(state.controlURL) in the state file")
        }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        if let body {
            request.httpBody = try JSONEncoder().encode(body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw DevClusterClientError("the dev cluster at \(state.controlURL) does not answer (\(error.localizedDescription)); is it still running?")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw DevClusterClientError("the dev cluster refused \(path): \(String(decoding: data, as: UTF8.self))")
        }
    }
}

public struct DevClusterClientError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
