module example.com/cairn

go 1.26.8
