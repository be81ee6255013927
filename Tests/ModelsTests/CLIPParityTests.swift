import Models
import Tensor
import XCTest

final class CLIPParityTests: XCTestCase {
    func testVisionHiddenStatesMatchTransformers() throws {
        let fixture = try Fixture("clip")
        let vision = try CLIP.Vision(directory: fixture.directory)
        let output = try vision(fixture.tensor("pixel_values"))
        XCTAssertEqual(output.hiddenStates.count, vision.config.layerCount + 1)
        for (i, state) in output.hiddenStates.enumerated() {
            assertClose(state, try fixture.tensor("vision.hidden_states.\(i)"), "hidden state \(i)")
        }
        assertClose(output.lastHiddenState, try fixture.tensor("vision.last_hidden_state"), "last hidden state")
    }

    func testVisionLastLayerQueryKeyAndClassAttentionMatchReference() throws {
        let fixture = try Fixture("clip")
        let output = try CLIP.Vision(directory: fixture.directory)(fixture.tensor("pixel_values"))
        assertClose(output.lastLayerQuery, try fixture.tensor("vision.last_layer_q"), "last layer q")
        assertClose(output.lastLayerKey, try fixture.tensor("vision.last_layer_k"), "last layer k")
        assertClose(output.classAttention, try fixture.tensor("vision.cls_attention"), "CLS attention row")
    }

    func testVisionProjectsEveryTokenIntoTheJointSpace() throws {
        let fixture = try Fixture("clip")
        let output = try CLIP.Vision(directory: fixture.directory)(fixture.tensor("pixel_values"))
        assertClose(try XCTUnwrap(output.tokenEmbeddings), try fixture.tensor("vision.token_embeds"), "token embeddings")
        assertClose(try XCTUnwrap(output.imageEmbeddings), try fixture.tensor("vision.image_embeds"), "image embeddings")
    }

    func testTextTowerPoolsAtEndOfTextAndProjects() throws {
        let fixture = try Fixture("clip")
        let text = try CLIP.Text(directory: fixture.directory)
        let ids = try fixture.integers("text.input_ids")
        let length = fixture.shape("text.input_ids")[1]
        let texts = stride(from: 0, to: ids.count, by: length).map { Array(ids[$0..<($0 + length)]) }
        let output = try text(texts)
        assertClose(output.lastHiddenState, try fixture.tensor("text.last_hidden_state"), "text hidden states")
        assertClose(output.pooled, try fixture.tensor("text.pooled"), "pooled")
        assertClose(try XCTUnwrap(output.textEmbeddings), try fixture.tensor("text.text_embeds"), "text embeddings")
    }

    func testVisionRejectsPixelsOfTheWrongSize() throws {
        let vision = try CLIP.Vision(directory: try Fixture("clip").directory)
        XCTAssertThrowsError(try vision(Tensor(shape: [1, 3, 32, 30]))) { error in
            XCTAssertTrue("\(error)".contains("[B, 3, 30, 30]"), "\(error)")
        }
    }

    func testTextRejectsIdsOutsideTheVocabularyAndOverlongTexts() throws {
        let text = try CLIP.Text(directory: try Fixture("clip").directory)
        XCTAssertThrowsError(try text([[98, 100, 99]])) { XCTAssertTrue("\($0)".contains("100")) }
        XCTAssertThrowsError(try text([Array(repeating: 5, count: 21)])) { XCTAssertTrue("\($0)".contains("context")) }
        XCTAssertThrowsError(try text([[98, 5, 6]])) { XCTAssertTrue("\($0)".contains("end-of-text")) }
    }
}
