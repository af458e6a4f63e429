import Testing
@testable import Vision

@Suite("Redaction holds and masks")
struct RedactionTests {
    let face = PixelBox(x: 100, y: 100, width: 40, height: 50)

    @Test("a face the detector misses stays masked for holdFrames frames, then is dropped")
    func missedFaceIsHeld() {
        var hold = RedactionHold(holdFrames: 3)
        #expect(hold.regions(for: [face]) == [face])
        for _ in 0..<3 { #expect(hold.regions(for: []) == [face]) }
        #expect(hold.regions(for: []).isEmpty)
    }

    @Test("a box seen again replaces its held copy (no duplicates); a missed moving face is masked where it was and where it is heading")
    func seenAgainReplacesHold() {
        var hold = RedactionHold(holdFrames: 2)
        _ = hold.regions(for: [face])
        let moved = PixelBox(x: 110, y: 102, width: 40, height: 50)
        #expect(hold.regions(for: [moved]) == [moved])
        var previous = moved
        for _ in 0..<2 {
            let held = hold.regions(for: [])
            #expect(held.count == 1)
            #expect(held.first.map { $0.coverage(of: moved) } == 1, "the last place it was seen stays covered")
            #expect((held.first?.x1 ?? 0) > previous.x1, "and the mask reaches where it is heading: \(held)")
            previous = held.first ?? previous
        }
        #expect(hold.regions(for: []).isEmpty)
    }

    @Test("faces are padded by 1.3; every person's head region is masked on every camera; whole-person cameras also mask persons and motion; regions are clipped to the frame")
    func plannedRegions() {
        let person = PixelBox(x: 300, y: 50, width: 60, height: 180)
        let motion = PixelBox(x: 600, y: 400, width: 100, height: 100)
        // Upright: the top 30 %, a tenth of the width either side, a tenth of the height above.
        let head = PixelBox(x0: 294, y0: 32, x1: 366, y1: 104)
        #expect(RedactionPlan.headRegion(ofPerson: person) == head)
        // Lying (wider than tall): the head may be at either end, the whole box is masked.
        let lying = PixelBox(x: 100, y: 300, width: 180, height: 60)
        #expect(RedactionPlan.headRegion(ofPerson: lying) == lying.scaled(by: RedactionPlan.personPadding))
        let facesOnly = RedactionPlan.regions(target: .faces, faces: [face], persons: [person], motion: [motion], width: 640, height: 480)
        #expect(facesOnly == [face.scaled(by: 1.3), head])
        let whole = RedactionPlan.regions(target: .wholePersons, faces: [face], persons: [person], motion: [motion], width: 640, height: 480)
        #expect(whole.count == 4 && whole.contains(person.scaled(by: RedactionPlan.personPadding)) && whole.contains(head))
        #expect(whole.contains(PixelBox(x0: 600, y0: 400, x1: 640, y1: 480)))
    }

    @Test("the masked fraction of persons' protected area counts overlapping masks once and weighs each person by area")
    func maskedFraction() throws {
        let small = PixelBox(x: 0, y: 0, width: 32, height: 32), large = PixelBox(x: 100, y: 0, width: 64, height: 64)
        #expect(RedactionPlan.maskedFraction(of: [], by: [small]) == nil)
        #expect(RedactionPlan.maskedFraction(of: [small, large], by: [small, large]) == 1)
        #expect(RedactionPlan.maskedFraction(of: [small, large], by: []) == 0)
        // The left half of the small box, masked twice: 512 of its 1,024 px, of 5,120 in all.
        let left = PixelBox(x: 0, y: 0, width: 16, height: 32)
        let fraction = try #require(RedactionPlan.maskedFraction(of: [small, large], by: [left, left]))
        #expect(abs(fraction - 0.1) < 0.001, "\(fraction)")
        // Two masks, each covering a half, together cover it whole.
        #expect(RedactionPlan.maskedFraction(of: [small], by: [left, PixelBox(x: 16, y: 0, width: 16, height: 32)]) == 1)
        let person = PixelBox(x: 300, y: 50, width: 60, height: 180)
        #expect(RedactionPlan.protectedRegion(ofPerson: person, target: .faces) == RedactionPlan.headRegion(ofPerson: person))
        #expect(RedactionPlan.protectedRegion(ofPerson: person, target: .wholePersons) == person.scaled(by: RedactionPlan.personPadding))
    }

    @Test("solid fill leaves one colour; the coarse mosaic leaves at most 4 blocks across the shorter side (4 × 5 over a 40 × 50 face); outside pixels are untouched")
    func masksAreIrreversible() {
        // A gradient, so every pixel differs from its neighbours.
        var pixels = [UInt8](repeating: 0, count: 200 * 200 * 3)
        for y in 0..<200 { for x in 0..<200 { pixels[(y * 200 + x) * 3] = UInt8(x); pixels[(y * 200 + x) * 3 + 1] = UInt8(y) } }
        let image = RGBImage(width: 200, height: 200, pixels: pixels)
        func colours(_ image: RGBImage, in box: PixelBox) -> Set<[UInt8]> {
            var result = Set<[UInt8]>()
            for y in Int(box.y0)..<Int(box.y1) { for x in Int(box.x0)..<Int(box.x1) { result.insert(Array(image.pixels[((y * 200 + x) * 3)..<((y * 200 + x) * 3 + 3)])) } }
            return result
        }
        var solid = image
        solid.redact([face], fill: .solid)
        #expect(colours(solid, in: face) == [[0, 0, 0]])
        var mosaic = image
        mosaic.redact([face], fill: .coarseMosaic)
        #expect(colours(mosaic, in: face).count <= 20)
        #expect(colours(mosaic, in: PixelBox(x: 0, y: 0, width: 90, height: 90)) == colours(image, in: PixelBox(x: 0, y: 0, width: 90, height: 90)))
    }
}
