import Foundation
import VigilSchema
import Yams

/// One problem in a file an operator declares (cameras, rules), located by line, column and key
/// path: `cameras.yaml:12:7: cameras.dock-1.sampling.fsp: unknown key; expected fps or keyframes_only`.
public struct DeclarationProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// `cameras.<camera>.<key>…`; nil for problems of the whole file.
    public var keyPath: String?
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, keyPath: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return "\(location): " + (keyPath.map { "\($0): " } ?? "") + message
    }
}

/// Every problem found in a declared file, in file order.
public struct DeclarationProblems: Error, Sendable, CustomStringConvertible {
    public var errors: [DeclarationProblem]

    public init(errors: [DeclarationProblem]) {
        self.errors = errors.sorted { ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0) }
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Every file's declarations, parsed by `parse`, with every problem of every file; ids must be
/// unique across the files (`section.id: is declared in other.yaml too`). Sorted by id.
public func loadDeclarations<Value>(
    paths: [String], section: String, noun: String, id: (Value) -> String, parse: (_ yaml: String, _ file: String) throws(DeclarationProblems) -> [Value]
) throws(DeclarationProblems) -> [Value] {
    var values: [Value] = []
    var problems: [DeclarationProblem] = []
    var seen: [String: String] = [:]
    for path in paths {
        do {
            for value in try parse(try DeclarationReader.text(of: path), path) {
                if let other = seen[id(value)] {
                    problems.append(DeclarationProblem(file: path, keyPath: "\(section).\(id(value))", message: "is declared in \(other) too; \(noun) ids are unique"))
                }
                seen[id(value)] = path
                values.append(value)
            }
        } catch {
            problems += error.errors
        }
    }
    guard problems.isEmpty else { throw DeclarationProblems(errors: problems) }
    return values.sorted { id($0) < id($1) }
}

/// Reads a YAML file an operator declares and collects every problem, not just the first, so
/// one run shows everything to fix. The cameras and rules files extend it with their own keys.
public struct DeclarationReader {
    public let file: String
    public private(set) var errors: [DeclarationProblem] = []

    public init(file: String) {
        self.file = file
    }

    /// The file's text from `path`, or a problem naming it.
    public static func text(of path: String) throws(DeclarationProblems) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw DeclarationProblems(errors: [DeclarationProblem(file: path, message: "cannot read the file: \(error.localizedDescription)")])
        }
    }

    /// The mapping under the file's only top-level key `top` (`cameras:`, `rules:`).
    public mutating func section(_ yaml: String, top: String, holding what: String) -> Node.Mapping? {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                fail(nil, nil, "the file is empty; it needs a `\(top):` mapping")
                return nil
            }
            root = composed
        } catch let error as YamlError {
            fail(nil, nil, "YAML syntax error: \(error)")
            return nil
        } catch {
            fail(nil, nil, "not readable as YAML: \(error)")
            return nil
        }
        guard let mapping = mapping(root, path: nil) else { return nil }
        for (key, _) in mapping where key.string != top {
            fail(key, key.string ?? "?", "unknown key; this file has only `\(top):`")
        }
        guard let section = mapping[top] else {
            fail(root, nil, "has no `\(top):` mapping (\(what))")
            return nil
        }
        return self.mapping(section, path: top)
    }

    /// A key given without a value (`privacy_masks:` with nothing under it) means "none".
    public static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// Ids of cameras, rules, masks, secrets and labels: 1 to 64 of a-z 0-9 - _ . starting with a letter or digit.
    public static func isValidID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, id.unicodeScalars.count <= 64 else { return false }
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789-_.")
        return CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789").contains(first) && id.unicodeScalars.allSatisfy(allowed.contains)
    }

    public static func list(_ names: [String]) -> String {
        names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    // MARK: - Node helpers that report what they expected

    public mutating func mapping(_ node: Node, path: String?) -> Node.Mapping? {
        guard case .mapping(let mapping) = node else {
            fail(node, path, "expected a mapping (key: value lines)")
            return nil
        }
        return mapping
    }

    public mutating func scalar(_ node: Node, path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            fail(node, path, "expected a single value")
            return nil
        }
        return scalar.string
    }

    public mutating func number(_ node: Node, path: String, in range: ClosedRange<Double>) -> Double? {
        guard let value = node.float, range.contains(value) else {
            fail(node, path, "must be a number from \(range.lowerBound.formatted()) to \(range.upperBound.formatted())")
            return nil
        }
        return value
    }

    public mutating func bool(_ node: Node, path: String) -> Bool? {
        guard let value = node.bool else {
            fail(node, path, "must be true or false")
            return nil
        }
        return value
    }

    /// A list of single values.
    public mutating func strings(_ node: Node, path: String) -> [String]? {
        guard case .sequence(let items) = node else {
            fail(node, path, "must be a list, e.g. [a, b]")
            return nil
        }
        return items.enumerated().compactMap { index, item in scalar(item, path: "\(path)[\(index)]") }
    }

    /// A point [x, y] in fractions of the frame (0 to 1, origin top-left).
    public mutating func point(_ node: Node, path: String) -> Vigil_V1_Point? {
        guard case .sequence(let pair) = node, pair.count == 2, let x = pair[0].float, let y = pair[1].float, (0...1).contains(x), (0...1).contains(y) else {
            fail(node, path, "must be a point [x, y] with x and y from 0 to 1 (fractions of the frame, origin top-left)")
            return nil
        }
        var point = Vigil_V1_Point()
        point.x = Float(x)
        point.y = Float(y)
        return point
    }

    /// A polygon of at least 3 points inside the frame.
    public mutating func polygon(_ node: Node, path: String) -> Vigil_V1_Polygon? {
        guard case .sequence(let vertices) = node, vertices.count >= 3 else {
            fail(node, path, "must list at least 3 points [x, y], each from 0 to 1 (fractions of the frame, origin top-left)")
            return nil
        }
        let before = errors.count
        var polygon = Vigil_V1_Polygon()
        for (index, vertex) in vertices.enumerated() {
            if let point = point(vertex, path: "\(path)[\(index)]") { polygon.vertices.append(point) }
        }
        return errors.count == before ? polygon : nil
    }

    public mutating func rejectUnknownKeys(_ mapping: Node.Mapping, allowed: [String], path: String) {
        for (key, _) in mapping where !allowed.contains(key.string ?? "") {
            fail(key, "\(path).\(key.string ?? "?")", "unknown key; expected \(Self.list(allowed))")
        }
    }

    public mutating func fail(_ node: Node?, _ path: String?, _ message: String) {
        errors.append(DeclarationProblem(file: file, line: node?.mark.map { $0.line }, column: node?.mark.map { $0.column }, keyPath: path, message: message))
    }
}
