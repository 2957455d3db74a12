import Testing

@Test func placeholderCurriculum() {}
