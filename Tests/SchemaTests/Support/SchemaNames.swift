import SwiftProtobuf

/// One named element of the schema: a message, field, oneof, enum or enum value.
struct SchemaName: Sendable, CustomStringConvertible {
    enum Kind: String, Sendable {
        case message, field, oneof, `enum` = "enum", enumValue = "enum value"
    }

    let kind: Kind
    /// The name as written in the .proto file, e.g. `track_id` or `DetectedObject`.
    let name: String
    /// Where it is, e.g. `vigil.v1.DetectedObject.track_id`.
    let fullName: String
    /// The .proto file that declares it.
    let file: String

    var description: String { "\(file): \(kind.rawValue) \(fullName)" }
}

/// An enum with its values, in declaration order.
struct SchemaEnum: Sendable {
    let fullName: String
    let name: String
    let file: String
    let values: [(name: String, number: Int32)]
}

/// Every named element of every file in the set, nested messages and enums included.
func schemaNames(in set: Google_Protobuf_FileDescriptorSet) -> [SchemaName] {
    var names: [SchemaName] = []
    for file in set.file {
        func addEnum(_ descriptor: Google_Protobuf_EnumDescriptorProto, scope: String) {
            let fullName = "\(scope).\(descriptor.name)"
            names.append(SchemaName(kind: .enum, name: descriptor.name, fullName: fullName, file: file.name))
            for value in descriptor.value {
                names.append(SchemaName(kind: .enumValue, name: value.name, fullName: "\(fullName).\(value.name)", file: file.name))
            }
        }
        func addMessage(_ descriptor: Google_Protobuf_DescriptorProto, scope: String) {
            let fullName = "\(scope).\(descriptor.name)"
            names.append(SchemaName(kind: .message, name: descriptor.name, fullName: fullName, file: file.name))
            for field in descriptor.field {
                names.append(SchemaName(kind: .field, name: field.name, fullName: "\(fullName).\(field.name)", file: file.name))
            }
            for oneof in descriptor.oneofDecl {
                names.append(SchemaName(kind: .oneof, name: oneof.name, fullName: "\(fullName).\(oneof.name)", file: file.name))
            }
            for nested in descriptor.nestedType { addMessage(nested, scope: fullName) }
            for nested in descriptor.enumType { addEnum(nested, scope: fullName) }
        }
        for message in file.messageType { addMessage(message, scope: file.package) }
        for enumeration in file.enumType { addEnum(enumeration, scope: file.package) }
    }
    return names
}

/// Every enum of every file in the set, nested ones included.
func schemaEnums(in set: Google_Protobuf_FileDescriptorSet) -> [SchemaEnum] {
    var enums: [SchemaEnum] = []
    for file in set.file {
        func add(_ descriptor: Google_Protobuf_EnumDescriptorProto, scope: String) {
            enums.append(SchemaEnum(
                fullName: "\(scope).\(descriptor.name)",
                name: descriptor.name,
                file: file.name,
                values: descriptor.value.map { ($0.name, $0.number) }
            ))
        }
        func walk(_ message: Google_Protobuf_DescriptorProto, scope: String) {
            let fullName = "\(scope).\(message.name)"
            for nested in message.enumType { add(nested, scope: fullName) }
            for nested in message.nestedType { walk(nested, scope: fullName) }
        }
        for enumeration in file.enumType { add(enumeration, scope: file.package) }
        for message in file.messageType { walk(message, scope: file.package) }
    }
    return enums
}

/// Splits a proto identifier into lowercase words: `face_embedding`, `FaceEmbedding` and
/// `FACE_EMBEDDING` all give ["face", "embedding"]; `ReID` gives ["re", "id"].
func words(of identifier: String) -> [String] {
    var words: [String] = []
    var current = ""
    let characters = Array(identifier)
    for (index, character) in characters.enumerated() {
        if character == "_" || !(character.isLetter || character.isNumber) {
            if !current.isEmpty { words.append(current) }
            current = ""
            continue
        }
        if character.isUppercase, !current.isEmpty {
            let previous = characters[index - 1]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            // A new word starts at an upper-case letter after a lower-case one ("faceId"), or
            // at the last capital of a run followed by lower case ("HTTPServer" → HTTP, Server).
            if previous.isLowercase || previous.isNumber || (previous.isUppercase && next?.isLowercase == true) {
                words.append(current)
                current = ""
            }
        }
        current.append(character)
    }
    if !current.isEmpty { words.append(current) }
    return words.map { $0.lowercased() }
}

/// SCREAMING_SNAKE_CASE of a PascalCase enum name, the prefix buf's STANDARD rules expect:
/// `CameraState` → `CAMERA_STATE`.
func upperSnakeCase(_ identifier: String) -> String {
    words(of: identifier).map { $0.uppercased() }.joined(separator: "_")
}
