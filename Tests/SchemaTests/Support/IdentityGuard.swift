/// vigil's rule, stated where a failing guard points.
let vigilIdentityRule = """
    vigil never identifies people. The schema must have no field or message for a person's \
    identity or a biometric: no face recognition or face embeddings, no biometric templates, \
    no watchlists of persons, no re-identification across cameras or time, no licence plates, \
    no names of people seen by a camera, and no pose keypoints or gait outside the detect \
    stage (only a coarse posture leaves it). Operator accounts — the people using vigil — are \
    fine, named as `actor`, `author`, `assignee` or `operator_account`. If you need something \
    that looks like this, it is a design change: discuss it in an issue first, do not rename \
    the field to pass this test.
    """

/// Word sequences that name identity or biometric data. Matched against whole words of an
/// identifier, so `template` is not `plate` and `track_id` is not `face_id`.
let forbiddenWordSequences: [[String]] = [
    // Identity of a person.
    ["identity"], ["identities"], ["identify"], ["identified"], ["identification"],
    ["person", "id"], ["person", "ids"], ["face", "id"], ["face", "ids"],
    ["person", "name"], ["full", "name"], ["first", "name"], ["last", "name"],
    ["given", "name"], ["family", "name"], ["surname"], ["nickname"],
    // Biometrics and face recognition.
    ["biometric"], ["biometrics"], ["embedding"], ["embeddings"],
    ["face", "template"], ["face", "vector"], ["face", "descriptor"], ["face", "encoding"],
    ["face", "signature"], ["face", "features"], ["faceprint"], ["fingerprint"], ["voiceprint"],
    ["iris"], ["retina"], ["gait"],
    // Face images leave detect only as masked regions.
    ["face", "crop"], ["face", "crops"], ["face", "image"], ["face", "images"], ["face", "thumbnail"],
    // Pose keypoints stay inside detect.
    ["keypoint"], ["keypoints"], ["key", "point"], ["key", "points"], ["landmark"], ["landmarks"], ["skeleton"],
    // Watchlists and re-identification.
    ["watchlist"], ["watchlists"], ["watch", "list"], ["blacklist"], ["blocklist"],
    ["reid"], ["re", "id"], ["reidentification"], ["re", "identification"],
    ["global", "track"], ["cross", "camera"],
    // Licence plates.
    ["plate"], ["plates"], ["anpr"], ["alpr"],
]

/// The forbidden word sequence `identifier` contains, if any.
func forbiddenTerm(in identifier: String) -> String? {
    let identifierWords = words(of: identifier)
    for sequence in forbiddenWordSequences where sequence.count <= identifierWords.count {
        for start in 0...(identifierWords.count - sequence.count)
        where Array(identifierWords[start..<(start + sequence.count)]) == sequence {
            return sequence.joined(separator: "_")
        }
    }
    return nil
}

/// One line per schema element whose name looks like identity or biometric data.
func identityViolations(in names: [SchemaName]) -> [String] {
    names.compactMap { element in
        forbiddenTerm(in: element.name).map { "\(element) — contains '\($0)'" }
    }
}
