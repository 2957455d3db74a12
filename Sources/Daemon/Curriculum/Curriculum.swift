// Curriculum model and loading.
