import CommandLineSupport
import SwiftProtobuf
import VigilSchema

/// The match benchmarks' synthetic detections: on every camera, `persons` tracked persons walk
/// across the frame and back, each on its own row and at its own pace, the cameras out of step.
struct WalkingPersons {
    let persons: Int

    /// Camera number `camera`'s frame `step`, captured at `time` (ms since the epoch).
    func frame(camera: Int, id: String, step: Int, time: Int64) -> Vigil_V1_FrameDetections {
        var frame = Vigil_V1_FrameDetections()
        frame.cameraID = id
        frame.frameSequence = UInt64(step)
        frame.captureTime = Google_Protobuf_Timestamp(milliseconds: time)
        frame.objects = (0..<persons).map { person in
            let phase = Double((step * (person + 3) + camera * 7) % 200) / 100
            let x = 0.05 + 0.9 * (phase < 1 ? phase : 2 - phase)
            let y = 0.15 + 0.8 * Double(person) / Double(max(1, persons))
            return Self.person(track: UInt64(person + 1), x: x, y: y)
        }
        return frame
    }

    /// A person whose feet (the box's bottom centre, the point rules judge) are at (`x`, `y`).
    static func person(track: UInt64, x: Double, y: Double) -> Vigil_V1_DetectedObject {
        var object = Vigil_V1_DetectedObject()
        object.classLabel = "person"
        object.score = 0.8
        object.trackID = track
        object.box = .with { $0.xMin = Float(x - 0.03); $0.xMax = Float(x + 0.03); $0.yMin = Float(y - 0.2); $0.yMax = Float(y) }
        return object
    }
}
