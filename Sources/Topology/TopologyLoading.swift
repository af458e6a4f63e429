import Foundation
import Yams

/// Why a topology file could not be read into typed values: a YAML syntax error, a name given
/// twice, a missing or unknown key, or a value of the wrong kind. Says where (line and column
/// when known, and the key path) and what to do.
public struct TopologyLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file's path, or `<yaml>` for text given directly.
    public var source: String
    /// 1-based, when known.
    public var line: Int?
    public var column: Int?
    /// E.g. `topics.frames.v1.partitions`; nil for errors outside any key (syntax, empty file).
    public var keyPath: String?
    public var message: String

    public init(source: String, line: Int? = nil, column: Int? = nil, keyPath: String? = nil, message: String) {
        self.source = source
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var location = source
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return "\(location): " + (keyPath.map { "\($0): " } ?? "") + message
    }
}

extension Topology {
    /// Reads and decodes a topology file. Does not validate: call `validate()` for the problems
    /// that need the whole topology (undeclared topics, replica bounds, privacy rules…).
    public static func load(contentsOf url: URL) throws(TopologyLoadError) -> Topology {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            let reason = (error as? CocoaError)?.code == .fileReadNoSuchFile ? "no such file" : "\(error.localizedDescription)"
            throw TopologyLoadError(source: url.path, message: "cannot read the topology file: \(reason)")
        }
        return try parse(yaml: text, source: url.path)
    }

    /// Decodes topology YAML; `source` names it in errors.
    public static func parse(yaml: String, source: String = "<yaml>") throws(TopologyLoadError) -> Topology {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                throw TopologyLoadError(source: source, line: 1, column: 1, message: "the file is empty; it needs topics, workers, regions and dev")
            }
            root = composed
        } catch let error as TopologyLoadError {
            throw error
        } catch let error as YamlError {
            throw TopologyLoadError(error, source: source, yaml: yaml)
        } catch {
            throw TopologyLoadError(source: source, message: "not readable as YAML: \(error)")
        }
        do {
            return try YAMLDecoder().decode(Topology.self, from: root)
        } catch let error as DecodingError {
            throw TopologyLoadError(error, source: source, root: root)
        } catch let error as YamlError {
            throw TopologyLoadError(error, source: source, yaml: yaml)
        } catch {
            throw TopologyLoadError(source: source, message: "cannot decode: \(error)")
        }
    }
}

// MARK: - Turning Yams' and Codable's errors into located messages

extension TopologyLoadError {
    init(_ error: YamlError, source: String, yaml: String) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let within = context.map { " (\($0.text) starting at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            self.init(
                source: source, line: mark.line, column: mark.column,
                message: "YAML syntax error: \(problem)\(within); check the indentation and quoting on this line and the one above"
            )
        case .reader(let problem, let offset, _, _):
            let position = offset.map { Self.lineAndColumn(ofCharacterOffset: $0, in: yaml) }
            self.init(source: source, line: position?.line, column: position?.column, message: "cannot read the text: \(problem); save the file as UTF-8")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let name = duplicates.first ?? "?"
            let lines = Self.lines(declaring: name, from: context.mark.line, in: yaml)
            let parents = Self.parentKeys(ofLine: context.mark.line, in: yaml)
            let lineList = lines.count > 1 ? " (lines \(lines.map(String.init).joined(separator: " and ")))" : ""
            self.init(
                source: source, line: lines.last ?? context.mark.line, column: context.mark.column,
                keyPath: (parents + [name]).joined(separator: "."),
                message: "\"\(name)\" is declared twice\(lineList); names must be unique, so remove one or rename it"
            )
        default:
            self.init(source: source, message: "not readable as YAML: \(error)")
        }
    }

    init(_ error: DecodingError, source: String, root: Node) {
        let path: [any CodingKey]
        let message: String
        switch error {
        case .typeMismatch(let type, let context):
            path = context.codingPath
            let found = Self.describe(Self.node(at: path, in: root))
            message = "expected \(Self.describe(type)), found \(found)"
        case .valueNotFound(let type, let context):
            path = context.codingPath
            message = "has no value; give \(Self.describe(type))"
        case .keyNotFound(let key, let context):
            path = context.codingPath + [key]
            message = "is missing; add it (Topology/README.md lists every key)"
        case .dataCorrupted(let context):
            path = context.codingPath
            message = context.debugDescription
        @unknown default:
            path = []
            message = "\(error)"
        }
        // The deepest node the path reaches: the value itself, or the mapping a missing key belongs in.
        var mark: Mark?
        for length in stride(from: path.count, through: 0, by: -1) {
            if let found = Self.node(at: Array(path.prefix(length)), in: root)?.mark {
                mark = found
                break
            }
        }
        self.init(source: source, line: mark?.line, column: mark?.column, keyPath: Self.keyPath(path), message: message)
    }

    /// `topics.frames.v1.partitions`, `workers.vigil-detect.inputs[0]`.
    static func keyPath(_ path: [any CodingKey]) -> String? {
        guard !path.isEmpty else { return nil }
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text
    }

    static func node(at path: [any CodingKey], in root: Node) -> Node? {
        var current = root
        for key in path {
            if let index = key.intValue, let sequence = current.sequence {
                guard sequence.indices.contains(index) else { return nil }
                current = sequence[index]
            } else if let mapping = current.mapping, let value = mapping[key.stringValue] {
                current = value
            } else {
                return nil
            }
        }
        return current
    }

    static func describe(_ node: Node?) -> String {
        switch node {
        case .scalar(let scalar)?: scalar.string.isEmpty ? "nothing" : "\"\(scalar.string)\""
        case .mapping?: "a mapping"
        case .sequence?: "a list"
        case .alias?: "an alias"
        case nil: "nothing"
        }
    }

    static func describe(_ type: Any.Type) -> String {
        if type is Int.Type { return "a whole number" }
        if type is Bool.Type { return "true or false" }
        if type is String.Type { return "a text value" }
        // Yams names its node kinds (Node.Sequence, Node.Mapping, Node.Scalar) as the expectation.
        let name = "\(type)"
        if name.hasPrefix("Array") || name.contains("Sequence") { return "a list" }
        if name.hasPrefix("Dictionary") || name.contains("Mapping") || name.contains("KeyedDecodingContainer") { return "a mapping" }
        if name.contains("Scalar") { return "a single value" }
        return "a \(name)"
    }

    static func lineAndColumn(ofCharacterOffset offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for character in text.prefix(offset) {
            if character == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }

    // Yams reports a duplicated key with the position of its first occurrence only. The
    // topology is written in block style, so indentation gives the enclosing keys and the
    // other occurrences (a best effort: flow-style mappings get the name without its path).

    private static func indentation(_ line: Substring) -> Int { line.prefix { $0 == " " }.count }

    /// The key a block-style line declares (`  frames.v1:` → `frames.v1`), without quotes.
    private static func declaredKey(_ line: Substring) -> String? {
        var content = line.drop { $0 == " " }
        if content.hasPrefix("- ") { content = content.dropFirst(2) }
        guard !content.hasPrefix("#"), let colon = content.firstIndex(of: ":") else { return nil }
        let key = content[..<colon].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, !key.contains("{"), !key.contains("[") else { return nil }
        return key.trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
    }

    static func parentKeys(ofLine number: Int, in yaml: String) -> [String] {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.indices.contains(number - 1) else { return [] }
        var depth = indentation(lines[number - 1])
        var parents: [String] = []
        for line in lines[..<(number - 1)].reversed() where depth > 0 {
            let trimmed = line.drop { $0 == " " }
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), indentation(line) < depth, let key = declaredKey(line) else { continue }
            parents.insert(key, at: 0)
            depth = indentation(line)
        }
        return parents
    }

    /// Lines declaring `name` at the same indentation within the same parent as line `first`.
    static func lines(declaring name: String, from first: Int, in yaml: String) -> [Int] {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.indices.contains(first - 1) else { return [first] }
        let depth = indentation(lines[first - 1])
        var found = [first]
        for index in first..<lines.count {
            let line = lines[index]
            let trimmed = line.drop { $0 == " " }
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            if indentation(line) < depth { break }
            if indentation(line) == depth, declaredKey(line) == name { found.append(index + 1) }
        }
        return found
    }
}

// MARK: - Codable: named mappings, snake_case keys, unknown keys refused

/// Any mapping key: entry names, and keys the schema does not know.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// A typo such as `retension:` would otherwise be ignored and its default used in silence.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        // Not a mapping: the typed decoding that follows reports what it found instead.
        guard let container = try? container(keyedBy: AnyCodingKey.self) else { return }
        let known = Keys.allCases.map(\.stringValue)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: codingPath + [key],
                    debugDescription: "unknown key; the keys here are \(known.joined(separator: ", "))"
                )
            )
        }
    }

    /// The entry's name: the mapping key it is declared under.
    var entryName: String { codingPath.last?.stringValue ?? "" }
}

extension KeyedDecodingContainer {
    /// A mapping of name → entry, in file order.
    func decodeNamedEntries<Entry: Decodable>(_ type: Entry.Type, forKey key: Key) throws -> [Entry] {
        let entries = try nestedContainer(keyedBy: AnyCodingKey.self, forKey: key)
        return try entries.allKeys.map { name in try entries.decode(Entry.self, forKey: name) }
    }

    func decodeNamedEntriesIfPresent<Entry: Decodable>(_ type: Entry.Type, forKey key: Key) throws -> [Entry] {
        guard contains(key), try !decodeNil(forKey: key) else { return [] }
        return try decodeNamedEntries(type, forKey: key)
    }
}

extension KeyedEncodingContainer {
    mutating func encodeNamedEntries<Entry: Encodable>(_ entries: [Entry], name: (Entry) -> String, forKey key: Key) throws {
        var container = nestedContainer(keyedBy: AnyCodingKey.self, forKey: key)
        for entry in entries {
            try container.encode(entry, forKey: AnyCodingKey(stringValue: name(entry)))
        }
    }
}

extension Topology: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case topics, workers, regions, dev
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        topics = try container.decodeNamedEntries(Topic.self, forKey: .topics)
        workers = try container.decodeNamedEntries(Worker.self, forKey: .workers)
        regions = try container.decodeNamedEntriesIfPresent(Region.self, forKey: .regions)
        dev = try container.decode(DevProfile.self, forKey: .dev)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeNamedEntries(topics, name: \.name, forKey: .topics)
        try container.encodeNamedEntries(workers, name: \.name, forKey: .workers)
        try container.encodeNamedEntries(regions, name: \.name, forKey: .regions)
        try container.encode(dev, forKey: .dev)
    }
}

extension Topology.Topic: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case description, partitions, key, retention, scaled
        case replicationFactor = "replication_factor"
        case minInsyncReplicas = "min_insync_replicas"
        case cleanupPolicy = "cleanup_policy"
        case rawPixels = "raw_pixels"
        case partitionedLike = "partitioned_like"
        case externalProducers = "external_producers"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = decoder.entryName
        description = try container.decode(String.self, forKey: .description)
        partitions = try container.decode(Int.self, forKey: .partitions)
        replicationFactor = try container.decode(Int.self, forKey: .replicationFactor)
        minInsyncReplicas = try container.decode(Int.self, forKey: .minInsyncReplicas)
        retention = Retention(try container.decode(String.self, forKey: .retention))
        cleanupPolicy = try container.decode(Topology.CleanupPolicy.self, forKey: .cleanupPolicy)
        key = try container.decodeIfPresent(String.self, forKey: .key)
        rawPixels = try container.decodeIfPresent(Bool.self, forKey: .rawPixels) ?? false
        scaled = try container.decodeIfPresent(Bool.self, forKey: .scaled) ?? false
        partitionedLike = try container.decodeIfPresent(String.self, forKey: .partitionedLike)
        externalProducers = try container.decodeIfPresent([String].self, forKey: .externalProducers) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(description, forKey: .description)
        try container.encode(partitions, forKey: .partitions)
        try container.encode(replicationFactor, forKey: .replicationFactor)
        try container.encode(minInsyncReplicas, forKey: .minInsyncReplicas)
        try container.encode(retention.text, forKey: .retention)
        try container.encode(cleanupPolicy, forKey: .cleanupPolicy)
        try container.encodeIfPresent(key, forKey: .key)
        if rawPixels { try container.encode(rawPixels, forKey: .rawPixels) }
        if scaled { try container.encode(scaled, forKey: .scaled) }
        try container.encodeIfPresent(partitionedLike, forKey: .partitionedLike)
        if !externalProducers.isEmpty { try container.encode(externalProducers, forKey: .externalProducers) }
    }
}

extension Topology.CleanupPolicy: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let policy = Self(rawValue: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "\"\(text)\" is not a cleanup policy; use delete, compact, or \"compact,delete\" (state changelogs)")
            )
        }
        self = policy
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension Topology.Worker: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case description, inputs, tables, owns, delivers, outputs
        case consumerGroup = "consumer_group"
        case maxReplicas = "max_replicas"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = decoder.entryName
        description = try container.decode(String.self, forKey: .description)
        consumerGroup = try container.decode(String.self, forKey: .consumerGroup)
        inputs = try container.decode([String].self, forKey: .inputs)
        tables = try container.decodeIfPresent([String].self, forKey: .tables) ?? []
        owns = try container.decodeIfPresent(String.self, forKey: .owns)
        delivers = try container.decodeIfPresent([String].self, forKey: .delivers) ?? []
        outputs = try container.decode([Topology.Output].self, forKey: .outputs)
        maxReplicas = try container.decode(Int.self, forKey: .maxReplicas)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(description, forKey: .description)
        try container.encode(consumerGroup, forKey: .consumerGroup)
        try container.encode(inputs, forKey: .inputs)
        if !tables.isEmpty { try container.encode(tables, forKey: .tables) }
        try container.encodeIfPresent(owns, forKey: .owns)
        if !delivers.isEmpty { try container.encode(delivers, forKey: .delivers) }
        try container.encode(outputs, forKey: .outputs)
        try container.encode(maxReplicas, forKey: .maxReplicas)
    }
}

extension Topology.Output: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case topic, key
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        topic = try container.decode(String.self, forKey: .topic)
        key = try container.decodeIfPresent(String.self, forKey: .key)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(topic, forKey: .topic)
        try container.encodeIfPresent(key, forKey: .key)
    }
}

extension Topology.Region: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case description, bootstrap, cameras, replicas
        case kafkaCluster = "kafka_cluster"
        case partitionMultiplier = "partition_multiplier"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = decoder.entryName
        description = try container.decode(String.self, forKey: .description)
        kafkaCluster = try container.decode(String.self, forKey: .kafkaCluster)
        bootstrap = try container.decode(String.self, forKey: .bootstrap)
        cameras = try container.decode(Int.self, forKey: .cameras)
        partitionMultiplier = try container.decode(Int.self, forKey: .partitionMultiplier)
        replicas = try container.decodeNamedEntries(Topology.ReplicaBounds.self, forKey: .replicas)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(description, forKey: .description)
        try container.encode(kafkaCluster, forKey: .kafkaCluster)
        try container.encode(bootstrap, forKey: .bootstrap)
        try container.encode(cameras, forKey: .cameras)
        try container.encode(partitionMultiplier, forKey: .partitionMultiplier)
        try container.encodeNamedEntries(replicas, name: \.worker, forKey: .replicas)
    }
}

extension Topology.ReplicaBounds: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case min, max
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        worker = decoder.entryName
        min = try container.decode(Int.self, forKey: .min)
        max = try container.decode(Int.self, forKey: .max)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(min, forKey: .min)
        try container.encode(max, forKey: .max)
    }
}

extension Topology.DevProfile: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case brokers
        case replicationFactor = "replication_factor"
        case partitionMultiplier = "partition_multiplier"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        brokers = try container.decode(Int.self, forKey: .brokers)
        replicationFactor = try container.decode(Int.self, forKey: .replicationFactor)
        partitionMultiplier = try container.decode(Int.self, forKey: .partitionMultiplier)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(brokers, forKey: .brokers)
        try container.encode(replicationFactor, forKey: .replicationFactor)
        try container.encode(partitionMultiplier, forKey: .partitionMultiplier)
    }
}
