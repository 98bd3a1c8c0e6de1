from knnvocab.cli import main

main()
